"""Seeds derived from `seed` and the stage name (the byte-identical reruns are tested in tests/faults/test_kill.py)."""

from __future__ import annotations

from finetuner.common.seeding import derived_seed


def test_derived_seeds_differ_by_stage_and_seed_and_are_stable() -> None:
    seeds = {derived_seed(s, name) for s in (0, 1) for name in ("train_head", "train_partial")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)
    assert derived_seed(0, "train_head") == derived_seed(0, "train_head")
