"""`predict`: label new images with a pipeline checkpoint and write a CSV.

    predict --checkpoint models/best.pt --out predictions.csv [--top-k 3] [--batch-size 64] INPUT...
    python -m finetuner.cli.predict ...   (the same)

INPUT is any mix of image files, folders (searched recursively for image files) and `@list.txt` files naming one
input per line (relative lines are taken from the current directory; blank lines and `#` comments are skipped).
The CSV has `path, predicted, confidence, top1_label, top1_prob, ..., error`; a file that cannot be decoded gets a
row with a plain reason in `error` (empty file, not an image, truncated, corrupt, ...), never a crash. An input that
does not exist stops the command before any work (exit code 2, naming it). The checkpoint's own preprocessing and
class names are used. A checkpoint that would need to run code to load is refused (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from finetuner import layout
from finetuner.common.device import resolve_device
from finetuner.common.imageio import UNREADABLE, ImageCheckError, check_image
from finetuner.common.stage import write_csv  # the atomic CSV writer every stage uses
from finetuner.evaluate.inference import ImageResult, predict_files
from finetuner.train.checkpoint import CheckpointError, load_pipeline_checkpoint, model_from_checkpoint
from finetuner.train.preprocessing import Preprocessing

IMAGE_SUFFIXES = frozenset(suffix.lower() for suffix in Image.registered_extensions())


def expand_inputs(inputs: Iterable[str], allow_lists: bool = True) -> tuple[list[Path], list[Path]]:
    """(files to predict, in input order without repeats; inputs that do not exist).

    Lines of a list file are files or folders, not further lists (a list naming itself would never end).
    """
    files: dict[Path, None] = {}
    missing: list[Path] = []
    for item in inputs:
        if item.startswith("@") and allow_lists:
            listed, listed_missing = expand_inputs(_read_list(Path(item[1:])), allow_lists=False)
            files.update(dict.fromkeys(listed))
            missing += listed_missing
            continue
        path = Path(item)
        if path.is_dir():
            # Hidden files (.DS_Store, editor backups) are never images users meant to label.
            found = (
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            files.update(dict.fromkeys(found))
        elif path.is_file():
            files[path] = None
        else:
            missing.append(path)
    return list(files), missing


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SystemExit(f"predict: cannot read input list {path}: {exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def plain_error(result: ImageResult) -> ImageResult:
    """The ingest stage's category for a file that failed to decode ("empty file: 0 bytes", "not an image: ...")
    instead of the decoder's exception name."""
    if result.error is None:
        return result
    try:
        check_image(Path(result.path).read_bytes())
    except ImageCheckError as exc:
        return ImageResult(result.path, None, str(exc))
    except OSError as exc:
        return ImageResult(result.path, None, f"{UNREADABLE}: {exc.strerror or exc}")
    return result  # decodes here but not with the checkpoint's preprocessing: keep that message


def result_rows(results: Sequence[ImageResult], class_names: Sequence[str], top_k: int) -> list[dict[str, str]]:
    """One CSV row per result: the top class, its probability, the top-k labels and probabilities, or the error."""
    k = min(top_k, len(class_names))
    rows = []
    for result in results:
        row = {"path": result.path, "predicted": "", "confidence": "", "error": result.error or ""}
        for rank in range(1, k + 1):
            row[f"top{rank}_label"] = row[f"top{rank}_prob"] = ""
        if result.probs is not None:
            order = np.argsort(-result.probs, kind="stable")[:k]
            row["predicted"] = class_names[order[0]]
            row["confidence"] = f"{result.probs[order[0]]:.6f}"
            for rank, index in enumerate(order, start=1):
                row[f"top{rank}_label"] = class_names[index]
                row[f"top{rank}_prob"] = f"{result.probs[index]:.6f}"
        rows.append(row)
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="predict", description="Label images with a finetuner checkpoint.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or @list.txt")
    parser.add_argument("--checkpoint", type=Path, default=layout.BEST_MODEL)
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be >= 1")
    files, missing = expand_inputs(args.inputs)
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        shown = ", ".join(str(path) for path in missing[:10]) + more
        print(f"predict: no such file or folder: {shown}", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
        checkpoint = load_pipeline_checkpoint(args.checkpoint)
        model = model_from_checkpoint(checkpoint)
    except (CheckpointError, ValueError, RuntimeError, KeyError) as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return 2
    class_to_idx = checkpoint["class_to_idx"]
    class_names = sorted(class_to_idx, key=class_to_idx.__getitem__)
    results = predict_files(model, Preprocessing.from_dict(checkpoint["preprocessing"]), files, args.batch_size, device)
    rows = result_rows([plain_error(result) for result in results], class_names, args.top_k)
    columns = (
        ["path", "predicted", "confidence", *[c for c in rows[0] if c.startswith("top")], "error"]
        if rows
        else ["path", "predicted", "confidence", "error"]
    )
    write_csv(args.out, rows, columns)
    failed = sum(1 for row in rows if row["error"])
    print(f"predict: {len(rows)} row(s) written to {args.out}; {failed} could not be read", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
