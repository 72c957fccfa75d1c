"""The summary's pictures and leakage section: which test images are shown, how the sections read, and the Prefect
artifact embedding the pictures themselves."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from finetuner.evaluate.pictures import pairs_figure, sample_grid, training_curves
from finetuner.evaluate.summary_leakage import leakage_section, pictures_section
from finetuner.evaluate.summary_pictures import pick_samples, read_curves
from flows.reports import embed_local_files


def test_samples_show_every_mistake_first_then_classes_in_turn():
    true = ["a", "a", "a", "b", "b", "c", "c", "c"]
    predicted = ["a", "b", "a", "b", "b", "c", "a", "c"]
    chosen = pick_samples(true, predicted, 6)
    assert chosen[:2] == [1, 6]  # the two mistakes
    assert [true[i] for i in chosen[2:]] == ["a", "b", "c", "a"]  # then right ones, one class after another
    assert len(pick_samples(true, predicted, 100)) == len(true)
    assert len(pick_samples(true, ["x"] * 8, 4)) == 4  # never more than asked, mistakes capped at half
    # photos of one specimen fail together: one mistake per unit before a second of the same unit
    units = ["u1", "u1", "u1", "u2", "u3", "u3", "u4", "u4"]
    assert pick_samples(true, ["x"] * 8, 8, units)[:4] == [0, 3, 4, 6]


def test_training_curves_read_every_stage_in_order(tmp_path: Path):
    for stage, values in (("train_head", [0.5, 0.7]), ("train_partial", [0.8])):
        tsv = tmp_path / stage / "plots" / "metrics" / "val" / "macro_f1.tsv"
        tsv.parent.mkdir(parents=True)
        tsv.write_text("step\tmacro_f1\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))
    curves = read_curves(tmp_path)
    assert list(curves) == ["train_head", "train_partial", "train_full"]
    assert curves["train_head"]["val/macro_f1"] == [0.5, 0.7] and curves["train_full"] == {}
    figure = training_curves(curves)
    labelled = [line.get_label() for line in figure.axes[0].lines if not line.get_label().startswith("_")]
    assert labelled == ["train_head: val macro F1", "train_partial: val macro F1"]


def test_figures_draw_what_they_are_given():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    grid = sample_grid([image] * 3, ["a", "b", "c"], ["a", "x", "c"], columns=2)
    titles = [ax.get_title() for ax in grid.axes if ax.get_title()]
    assert titles == ["a", "x\n(true: b)", "c"]
    assert len(pairs_figure([(image, image, "val / val")]).axes) == 2


def _report(inflation: float | None = 0.12) -> dict:
    entry = {"trained_on": "x", "own_test": {"macro_f1": 0.9}, "leak_free_test": {"macro_f1": 0.9}}
    naive = {
        "trained_on": "y",
        "own_test": {"macro_f1": 0.99},
        "leak_free_test": {"macro_f1": 0.87},
        "leaks": {"test_images": 60, "test_images_with_same_unit_in_train": 55},
    }
    return {
        "enabled": True,
        "metric": "macro_f1",
        "models": {"leak_free": entry, "naive": naive},
        "inflation": {"macro_f1": inflation},
    }


def test_leakage_section_states_the_inflation_and_the_rule():
    text = "\n".join(leakage_section(_report(), "separated_pairs.png"))
    assert "inflated by +0.120" in text and "55 of its 60" in text
    assert "never used to choose anything" in text and "(separated_pairs.png)" in text
    off = "\n".join(leakage_section({"enabled": False}, None))
    assert "Comparisons off" in off and "not available" in "\n".join(leakage_section(None, None))
    assert pictures_section({"test samples": "test_samples.png", "training curves": None}) == [
        "## Pictures",
        "",
        "![test samples](test_samples.png)",
        "",
        "training curves: not available",
    ]


def test_prefect_summary_embeds_pictures_found_in_reports(tmp_path: Path):
    (tmp_path / "test_samples.png").write_bytes(b"\x89PNG fake")
    text = embed_local_files("a ![s](test_samples.png) b", tmp_path)
    encoded = base64.b64encode(b"\x89PNG fake").decode()
    assert text == f"a ![s](data:image/png;base64,{encoded}) b"
