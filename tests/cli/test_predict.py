"""The `predict` command: good and broken files, folders and lists, top-k, refusing unsafe checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from finetuner.cli.predict import main
from finetuner.common.imageio import load_rgb
from finetuner.train.checkpoint import load_pipeline_checkpoint, model_from_checkpoint
from finetuner.train.preprocessing import Preprocessing
from tests.evaluate_world import CLASSES, RunsCode, make_checkpoint, make_image


def _read(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "new"
    make_image(root / "a.png", "cat", 1)
    make_image(root / "deep" / "er" / "b.JPG", "dog", 2)
    make_image(root / "c.png", "fox", 3, size=57)  # odd size: resize + crop must still give 32x32
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image; skipped by extension")
    make_image(root / ".hidden" / "x.png", "cat", 4)
    return root


def test_folder_with_broken_files_gets_plain_reasons(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = make_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "out" / "pred.csv"
    (folder / "fake.jpg").write_text("a text file with an image's name")
    code = main(["--checkpoint", str(ckpt), "--out", str(out), "--top-k", "2", "--batch-size", "2", str(folder)])
    assert code == 0
    rows = _read(out)
    assert set(rows) == {"a.png", "b.JPG", "c.png", "broken.png", "empty.jpg", "fake.jpg"}
    for name in ("a.png", "b.JPG", "c.png"):
        row = rows[name]
        assert row["error"] == "" and row["predicted"] in CLASSES and row["predicted"] == row["top1_label"]
        assert float(row["top1_prob"]) >= float(row["top2_prob"]) and row["confidence"] == row["top1_prob"]
        assert "top3_label" not in row
    assert rows["empty.jpg"]["error"] == "empty file: 0 bytes"
    assert rows["fake.jpg"]["error"].startswith("not an image")
    assert rows["broken.png"]["error"].startswith(("truncated", "corrupt"))
    assert all(row["predicted"] == "" for name, row in rows.items() if row["error"])
    assert "6 row(s)" in capsys.readouterr().err


def test_missing_input_stops_before_any_work(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred.csv"
    (tmp_path / "list.txt").write_text("gone-too.png\n")
    code = main(
        [
            "--checkpoint",
            str(tmp_path / "never-read.pt"),
            "--out",
            str(out),
            str(folder),
            str(tmp_path / "gone.png"),
            f"@{tmp_path / 'list.txt'}",
        ]
    )
    assert code == 2 and not out.exists()
    assert f"no such file or folder: {tmp_path / 'gone.png'}, gone-too.png" in capsys.readouterr().err


def test_probabilities_are_the_models_and_independent_of_batching(tmp_path: Path, folder: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "best.pt", seed=3)
    outs = []
    for batch_size in (1, 64):
        out = tmp_path / f"pred{batch_size}.csv"
        assert (
            main(
                [
                    "--checkpoint",
                    str(ckpt),
                    "--out",
                    str(out),
                    "--top-k",
                    "3",
                    "--batch-size",
                    str(batch_size),
                    "--device",
                    "cpu",
                    str(folder / "c.png"),
                    str(folder / "a.png"),
                ]
            )
            == 0
        )
        outs.append(_read(out))
    assert float(outs[0]["c.png"]["top1_prob"]) == pytest.approx(float(outs[1]["c.png"]["top1_prob"]), abs=2e-6)
    checkpoint = load_pipeline_checkpoint(ckpt)
    prep = Preprocessing.from_dict(checkpoint["preprocessing"])
    image = torch.from_numpy(prep.to_uint8(load_rgb(folder / "c.png")).copy())[None]
    with torch.no_grad():
        probs = torch.softmax(model_from_checkpoint(checkpoint)(prep.normalize(image)), 1)[0]
    row = outs[1]["c.png"]
    for rank in (1, 2, 3):
        index = checkpoint["class_to_idx"][row[f"top{rank}_label"]]
        assert float(row[f"top{rank}_prob"]) == pytest.approx(float(probs[index]), abs=1e-5)


def test_list_file_and_explicit_files(tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = make_checkpoint(tmp_path / "best.pt")
    monkeypatch.chdir(folder)
    (tmp_path / "list.txt").write_text("# new arrivals\na.png\n\nbroken.png\ndeep\n")
    out = tmp_path / "pred.csv"
    assert main(["--checkpoint", str(ckpt), "--out", str(out), f"@{tmp_path / 'list.txt'}", "a.png"]) == 0
    rows = _read(out)
    assert sorted(rows) == ["a.png", "b.JPG", "broken.png"]  # a.png listed twice, predicted once


def test_refuses_a_checkpoint_that_would_run_code(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "code-ran"
    evil = make_checkpoint(tmp_path / "evil.pt", payload=RunsCode(marker))
    out = tmp_path / "pred.csv"
    assert main(["--checkpoint", str(evil), "--out", str(out), str(folder)]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


def test_refuses_a_plain_state_dict(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    assert main(["--checkpoint", str(plain), "--out", str(tmp_path / "p.csv"), str(folder)]) == 2
    assert "not a finetuner checkpoint" in capsys.readouterr().err
