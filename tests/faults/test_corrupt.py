"""Damaged caches, resume checkpoints and registries: detected, never used. Caches are rebuilt (with a warning),
resume state is ignored (the stage starts again and reaches the same bytes), registries stop the run naming the
file, the line and what to do."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finetuner.common.integrity import sidecar
from finetuner.common.stage import InputError
from finetuner.dedup.embedding import EmbeddingCache
from finetuner.dedup.hash_cache import HashCache
from finetuner.split.registry import read_registry, write_registry


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def flip_byte(path: Path) -> None:
    """Flip bytes at a third and at two thirds of the file (one may land in an unused zip header field)."""
    data = bytearray(path.read_bytes())
    for at in (len(data) // 3, 2 * len(data) // 3):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def garble(path: Path) -> None:
    path.write_bytes(b"\x89PNG not what was written \xff\xfe" * 10)


DAMAGE: dict[str, Callable[[Path], None]] = {"truncated": truncate, "byte flipped": flip_byte, "garbled": garble}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("part", ["hashes", "thumbnails"])
def test_damaged_hash_cache_is_reported_and_rebuilt(
    tmp_path: Path, damage: str, part: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = HashCache(tmp_path, ["phash"], hash_size=8, decode_size=32, thumbs=True)
    shas = [f"{k:064x}" for k in range(50)]
    thumbs = np.random.default_rng(0).integers(0, 256, (50, 64, 64), dtype=np.uint8)
    cache.add(shas[:30], {"phash": np.arange(30, dtype=np.uint64)}, np.ones(30, np.float32), thumbs[:30])
    cache.save()
    grown = HashCache(tmp_path, ["phash"], 8, 32, thumbs=True)
    grown.add(shas[30:], {"phash": np.arange(30, 50, dtype=np.uint64)}, np.ones(20, np.float32), thumbs[30:])
    grown.save()  # a second shard: the first is not rewritten
    assert HashCache(tmp_path, ["phash"], 8, 32, thumbs=True).missing(shas) == []
    first = grown.table.files[0]
    damaged = first if part == "hashes" else first.with_name(first.name.replace(".npz", ".thumbs.npy"))
    DAMAGE[damage](damaged)
    with caplog.at_level(logging.WARNING):
        reread = HashCache(tmp_path, ["phash"], 8, 32, thumbs=True)
    assert reread.missing(shas) == list(range(30))  # nothing of the damaged shard is used: its hashes are redone
    assert "damaged hash cache" in caplog.text and damaged.name in caplog.text
    assert np.array_equal(reread.thumbs(shas)[np.arange(30, 50)], thumbs[30:])  # the intact shard still serves


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_embedding_cache_is_reported_and_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EmbeddingCache(tmp_path, "key")
    shas = [f"{k:064x}" for k in range(20)]
    cache.add(shas, np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32))
    cache.save()
    assert EmbeddingCache(tmp_path, "key").missing(shas) == []
    DAMAGE[damage](cache.path)
    with caplog.at_level(logging.WARNING):
        assert EmbeddingCache(tmp_path, "key").missing(shas) == list(range(20))
    assert "damaged embedding cache" in caplog.text


def _write_csv(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda target: frame.to_csv(target, index=False)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "path": [f"c{k % 3}/img_{k}.png" for k in range(30)],
            "unit": [f"u{k}" for k in range(30)],
            "group": "",
            "label": [f"c{k % 3}" for k in range(30)],
            "split": ["train", "val", "test"] * 10,
            "assigned_at_run": "1",
        }
    )
    path = tmp_path / "registry.csv"
    write_registry(path, _write_csv(frame))
    assert len(read_registry(path)) == 30
    return path


def _edit_row(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(",val,", ",train,").replace(",test,", ",train,")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "garbled", "row edited"])
def test_damaged_split_registry_stops_naming_the_file_and_what_to_do(registry: Path, damage: str) -> None:
    (DAMAGE.get(damage) or _edit_row)(registry)
    with pytest.raises(InputError) as info:
        read_registry(registry)
    message = str(info.value)
    assert str(registry) in message and "dvc checkout" in message and "reshuffle" in message


def test_registry_without_checksum_is_checked_row_by_row(registry: Path) -> None:
    sidecar(registry).unlink()  # e.g. edited by hand on purpose, checksum removed as the message says
    text = registry.read_text()
    registry.write_text(text[: len(text) - 12])  # cut inside the last row
    with pytest.raises(InputError, match=r"line 31: .*split '' is not one of"):
        read_registry(registry)
    registry.write_text(text.replace("c1/img_1.png,u1,,c1,val,1", "c1/img_1.png,u1,,c1,train,1"))
    assert read_registry(registry).loc[1, "split"] == "train"  # a valid deliberate edit is accepted


def test_a_kill_while_the_registry_is_replaced_leaves_a_pair_that_verifies(registry: Path) -> None:
    """The sidecar accepts old and new while the new file is staged, so no moment of the write is a false alarm."""
    old = registry.read_bytes()
    frame = read_registry(registry).assign(split="train")
    staged_only = {"written": False}

    def write_then_die(target: Path) -> None:
        _write_csv(frame)(target)
        staged_only["written"] = True

    import finetuner.common.integrity as integrity

    real_replace = integrity.os.replace
    integrity.os.replace = lambda *_: (_ for _ in ()).throw(KeyboardInterrupt())  # killed just before the rename
    try:
        with pytest.raises(KeyboardInterrupt):
            write_registry(registry, write_then_die)
    finally:
        integrity.os.replace = real_replace
    assert staged_only["written"] and registry.read_bytes() == old
    assert len(read_registry(registry)) == 30


def test_damaged_champion_registry_stops_the_retrain_flow_naming_the_line(tmp_path: Path) -> None:
    from finetuner.retrain.registry import REGISTRY, RegistryError, append_record
    from finetuner.retrain.registry import read_registry as read_decisions

    record = {
        "time": "t",
        "metric": "macro_f1",
        "min_gain": 0.01,
        "data_version": "v1",
        "decision": "promoted",
        "reason": "first",
        "champion_score": None,
        "challenger_score": 0.5,
    }
    for version in ("v1", "v2", "v3"):
        append_record(tmp_path, {**record, "data_version": version})
    path = tmp_path / REGISTRY
    assert [r["data_version"] for r in read_decisions(tmp_path)] == ["v1", "v2", "v3"]
    good = path.read_text()
    for damaged, line in (
        (good.replace('"v2"', '"v9"'), 3),
        (good[:-20], 3),
        (good.replace("promoted", "x", 1), 1),
        ("\n".join(good.splitlines()[1:]) + "\n", 1),
    ):
        path.write_text(damaged)
        with pytest.raises(RegistryError, match=rf"line {line}: .*move it aside"):
            read_decisions(tmp_path)
        with pytest.raises(RegistryError):
            append_record(tmp_path, record)  # never appended to
    path.write_text(good)
    assert json.loads(good.splitlines()[0])["previous_sha256"] is None


def test_damaged_resume_checkpoint_is_ignored_and_the_stage_reaches_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from finetuner.train import stage_files as train_io
    from finetuner.train.stage import run_training_stage
    from tests.train_fixtures import make_splits, tiny_params

    make_splits(tmp_path, per_class=4)
    params = tiny_params()  # head: 2 epochs on cached features
    run_training_stage("train_head", params, tmp_path)
    reference = {p.name: p.read_bytes() for p in (tmp_path / "models/train_head").iterdir()}
    save = train_io.save_torch

    def killed_after_first_epoch(path: Path, obj: object) -> None:
        save(path, obj)
        if path.name == "resume.pt":
            raise KeyboardInterrupt("killed")

    for damage in ("truncated",):  # other damage: test_damaged_checksummed_torch_file_is_refused (cheaper)
        shutil.rmtree(tmp_path / "models/train_head")
        monkeypatch.setattr(train_io, "save_torch", killed_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            run_training_stage("train_head", params, tmp_path)
        monkeypatch.setattr(train_io, "save_torch", save)
        DAMAGE[damage](tmp_path / "checkpoints/train_head/resume.pt")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="finetuner.train"):
            run_training_stage("train_head", params, tmp_path)
        assert "resume.pt" in caplog.text and "starts again from its first epoch" in caplog.text, damage
        assert "resuming after" not in caplog.text
        assert {p.name: p.read_bytes() for p in (tmp_path / "models/train_head").iterdir()} == reference, damage


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checksummed_torch_file_is_refused(tmp_path: Path, damage: str) -> None:
    import torch

    from finetuner.common.integrity import CorruptFile, load_torch_checked, wrap_checked
    from finetuner.train.stage_files import save_torch

    path = tmp_path / "resume.pt"
    state = {"model": {"w": torch.arange(4096, dtype=torch.float32)}, "history": [{"epoch": 1}]}
    save_torch(path, wrap_checked(state))
    assert torch.equal(load_torch_checked(path)["model"]["w"], state["model"]["w"])
    DAMAGE[damage](path)
    with pytest.raises(CorruptFile, match="resume.pt"):
        load_torch_checked(path)
