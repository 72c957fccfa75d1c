"""The test-reuse ledger: distinct models by content, per exact test split, warning past the threshold."""

from __future__ import annotations

import torch

from finetuner.evaluate.ledger import distinct_models, empty_ledger, ledger_summary, model_fingerprint, record_look

CLASSES = {"cat": 0, "dog": 1}


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    return net.state_dict()


def test_fingerprint_depends_on_weights_arch_and_class_order_only() -> None:
    base = model_fingerprint(_state(0), "resnet18", CLASSES)
    copy = {name: tensor.clone() for name, tensor in _state(0).items()}
    assert model_fingerprint(copy, "resnet18", CLASSES) == base  # same content, other tensors: same model
    assert model_fingerprint(_state(1), "resnet18", CLASSES) != base
    assert model_fingerprint(_state(0), "resnet34", CLASSES) != base
    assert model_fingerprint(_state(0), "resnet18", {"cat": 1, "dog": 0}) != base
    nudged = _state(0)
    nudged["0.bias"][0] += 1e-6
    assert model_fingerprint(nudged, "resnet18", CLASSES) != base
    half = {
        name: tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor for name, tensor in _state(0).items()
    }
    assert model_fingerprint(half, "resnet18", CLASSES) != base  # bfloat16 hashes too (numpy cannot hold it)


def test_same_model_twice_counts_once_and_a_new_model_counts() -> None:
    ledger = empty_ledger()
    ledger = record_look(ledger, "split1", "model-a", "t1", {"stage": "head"})
    ledger = record_look(ledger, "split1", "model-a", "t2", {"stage": "head"})
    assert distinct_models(ledger, "split1") == 1
    assert ledger["splits"]["split1"]["models"]["model-a"]["looks"] == 2
    assert ledger["splits"]["split1"]["models"]["model-a"]["last_scored"] == "t2"
    ledger = record_look(ledger, "split1", "model-b", "t3", {})
    assert distinct_models(ledger, "split1") == 2


def test_a_changed_test_split_starts_a_fresh_count_and_keeps_history() -> None:
    ledger = record_look(empty_ledger(), "split1", "model-a", "t1", {})
    ledger = record_look(ledger, "split1", "model-b", "t1", {})
    ledger = record_look(ledger, "split2", "model-b", "t2", {})
    assert distinct_models(ledger, "split2") == 1
    assert distinct_models(ledger, "split1") == 2


def test_record_look_does_not_mutate_its_input() -> None:
    before = record_look(empty_ledger(), "s", "m", "t1", {})
    record_look(before, "s", "other", "t2", {})
    assert distinct_models(before, "s") == 1


def test_warning_only_past_the_threshold() -> None:
    ledger = empty_ledger()
    for i in range(3):
        ledger = record_look(ledger, "s", f"m{i}", "t", {})
    assert ledger_summary(ledger, "s", warn_after=3)["warning"] is None
    ledger = record_look(ledger, "s", "m3", "t", {})
    summary = ledger_summary(ledger, "s", warn_after=3)
    assert summary["distinct_models_scored"] == 4
    assert "4 distinct models" in summary["warning"]
