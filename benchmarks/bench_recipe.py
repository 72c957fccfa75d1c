"""Does the default recipe make good models? Our params.yaml defaults vs fastai's `fine_tune` vs the seed recipe
vs training from scratch, on a real held-out transfer task: glyphs (../shared/data/glyphs, see its README).

forward: a resnet18 backbone pretrained by the pipeline on glyphs `source` (letters A-M) is fine-tuned on `target`
(N-Z); reverse: pretrained on `target`, fine-tuned on `source`. The split is the pipeline's own (ingest, dedup with
`dedup.max_distance: 0`, split by font family), shared by every contender; every contender starts from the same
weights file. Prints test macro-F1 and training wall time per contender and our ratios to fastai.

Run: `.venv/bin/python benchmarks/bench_recipe.py [--task forward|reverse|both] [--fraction F] [--image-size N]`;
on a machine with other load, `--threads 1 --together` runs fastai beside ours so that load hits both alike.
fastai runs in its own environment (`make bench-env-fastai`); without it that row is skipped. Without
../shared/data/glyphs the whole benchmark skips. Backbones and workspaces are cached in benchmarks/.cache/.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GLYPHS = ROOT.parent / "shared" / "data" / "glyphs"
CACHE = ROOT / "benchmarks" / ".cache"
FASTAI_PY = ROOT / "benchmarks" / "envs" / "fastai" / ".venv" / "bin" / "python"
FASTAI_SCRIPT = ROOT / "benchmarks" / "envs" / "fastai" / "fine_tune.py"
TASKS = {"forward": ("source", "target"), "reverse": ("target", "source")}
# The seed recipe (the defaults before issue 11), kept as the README's documented example.
OLD_STAGES = {
    "head": {"epochs": 5, "train": ["head"], "lr": {"head": 1.0e-3}},
    "partial": {"epochs": 5, "train": ["layer4", "head"], "lr": {"layer4": 1.0e-5, "head": 1.0e-4}, "warmup_epochs": 1},
    "full": {
        "epochs": 0,
        "train": ["all"],
        "lr": {"head": 3.0e-4, "layer4": 3.0e-5},
        "lr_decay": 0.33,
        "warmup_epochs": 1,
    },
}


def run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stderr[-3000:]}")


def backbone(half: str, image_size: int, budget_s: float) -> Path:
    """The pipeline's own pretraining (finetuner/demo/pretrain.py) on one half of glyphs, once per half and size."""
    out = CACHE / f"backbone_{half}_{image_size}.pt"
    if not out.is_file():
        work = CACHE / f"pretrain_{half}_{image_size}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "params.yaml").write_text(
            yaml.safe_dump({"seed": 0, "data": {"image_size": image_size, "workers": 1}, "model": {"weights": None}})
        )
        run(
            [
                sys.executable,
                "-m",
                "finetuner.demo.pretrain",
                "--source",
                str(GLYPHS / half / "images"),
                "--out",
                str(out),
                "--budget-seconds",
                str(budget_s),
                "--epochs",
                "6",
                "--lr",
                "2e-3",
            ],
            work,
        )
    return out


def chosen_families(half: str, fraction: float) -> list[dict[str, str]]:
    """metadata rows of a deterministic `fraction` of the font families (by a hash of the family name)."""
    with (GLYPHS / half / "metadata.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    keep = lambda group: int(hashlib.sha256(group.encode()).hexdigest(), 16) % 1000 < fraction * 1000  # noqa: E731
    return [row for row in rows if keep(row["group"])]


def base_params(image_size: int, weights: Path | None) -> dict[str, Any]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(image_size=image_size, workers=1)
    params["dedup"]["max_distance"] = 0  # identical renders only (look-alike letters chain classes: issue 11)
    params["train"]["device"] = "cpu"
    params["model"]["weights"] = str(weights) if weights else None
    return params


def workspace(half: str, fraction: float, image_size: int, weights: Path) -> Path:
    """ingest -> dedup -> split of one glyphs half (symlinked images), once; returns the workspace root."""
    ws = CACHE / f"ws_{half}_{fraction:g}_{image_size}"
    if (ws / "data" / "splits" / "test.csv").is_file():
        return ws
    rows = chosen_families(half, fraction)
    for row in rows:
        link = ws / "data" / "raw" / "images" / row["path"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(GLYPHS / half / "images" / row["path"])
    with (ws / "data" / "raw" / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (ws / "params.yaml").write_text(yaml.safe_dump(base_params(image_size, weights), sort_keys=False))
    for stage in ("ingest", "dedup", "split"):
        run([sys.executable, "-m", f"tasks.{stage}"], ws)
    return ws


def contender_root(ws: Path, name: str) -> Path:
    root = ws / "runs" / name
    for sub in ("models", "reports", "checkpoints"):
        subprocess.run(["rm", "-rf", str(root / sub)], check=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for sub in ("raw", "splits", "cache"):
        (ws / "data" / sub).mkdir(parents=True, exist_ok=True)
        if not (root / "data" / sub).exists():
            (root / "data" / sub).symlink_to(ws / "data" / sub)
    return root


def train_ours(ws: Path, name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The three training stages in-process on `raw` params; wall and CPU time of training only, test macro-F1 after.

    CPU time is the fair figure on a shared machine: with one torch thread per contender it is the work done,
    whatever else ran meanwhile; wall time is that work plus the waiting."""
    from finetuner.config import parse_params
    from finetuner.train.stage import run_training_stage

    root = contender_root(ws, name)
    params = parse_params(raw)
    began, cpu_began = time.perf_counter(), time.process_time()
    for stage in ("train_head", "train_partial", "train_full"):
        run_training_stage(stage, params, root)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    recipes = {
        stage: _read_json(root / "models" / stage / "recipe.json")
        for stage in ("train_head", "train_partial", "train_full")
    }
    return {
        "macro_f1": test_macro_f1(root),
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "recipes": recipes,
    }


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def test_macro_f1(root: Path) -> float:
    """Scores models/best.pt on the test split (a benchmark may; the pipeline reads it only in evaluate)."""
    import torch

    from finetuner.common.stage import read_csv
    from finetuner.train.checkpoint import load_pipeline_checkpoint, model_from_checkpoint
    from finetuner.train.engine import Runtime, Split, evaluate
    from finetuner.train.features import image_trainee
    from finetuner.train.image_cache import cached_images
    from finetuner.train.preprocessing import Preprocessing

    checkpoint = load_pipeline_checkpoint(root / "models" / "best.pt")
    model, prep = model_from_checkpoint(checkpoint), Preprocessing.from_dict(checkpoint["preprocessing"])
    rows = read_csv(root / "data" / "splits" / "test.csv")
    images = cached_images(
        [root / "data" / "raw" / "images" / r["path"] for r in rows], prep, root / "data" / "cache" / "images", 1
    )
    labels = torch.tensor([checkpoint["class_to_idx"][r["label"]] for r in rows])
    trainee = image_trainee(model, prep, Runtime(), model.eval)
    return evaluate(trainee, Split(torch.from_numpy(images), labels), len(checkpoint["class_to_idx"]), Runtime(), 128)[
        "macro_f1"
    ]


def start_fastai(ws: Path, weights: Path, image_size: int, threads: int) -> Callable[[], dict[str, Any] | None]:
    """Starts fastai's `fine_tune` in its own process now; the returned function waits for it and reads its result."""
    if not FASTAI_PY.is_file():
        print(f"  fastai: skipped ({FASTAI_PY} absent: run `make bench-env-fastai`)")
        return lambda: None
    out, log = ws / "runs" / "fastai.json", ws / "runs" / "fastai.log"
    out.unlink(missing_ok=True)
    cmd = [str(FASTAI_PY), str(FASTAI_SCRIPT), str(ws), str(weights), "--image-size", str(image_size)]
    cmd += ["--out", str(out), "--threads", str(threads)]
    with log.open("w") as handle:  # a file, not a pipe: a full pipe would stall fastai while ours trains
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)

    def wait() -> dict[str, Any]:
        if process.wait():
            raise SystemExit(f"{' '.join(cmd)} failed; its output ends:\n{log.read_text()[-3000:]}")
        return json.loads(out.read_text())

    return wait


def sklearn_probe(ws: Path, raw: dict[str, Any]) -> float:
    """Validation macro-F1 of scikit-learn's LogisticRegression (defaults) on the head stage's cached features."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from finetuner.common.stage import read_csv
    from finetuner.train.engine import Runtime
    from finetuner.train.features import extract_features
    from finetuner.train.image_cache import cached_images
    from finetuner.train.models import build_model

    rows = {name: read_csv(ws / "data" / "splits" / f"{name}.csv") for name in ("train", "val")}
    classes = sorted({r["label"] for r in rows["train"] + rows["val"]})
    built = build_model("resnet18", len(classes), raw["model"]["weights"], raw["data"]["image_size"])
    features = {}
    for name, chosen in rows.items():
        images = cached_images(
            [ws / "data" / "raw" / "images" / r["path"] for r in chosen],
            built.preprocessing,
            ws / "data" / "cache" / "images",
            1,
        )
        features[name] = extract_features(
            built.model, "resnet18", torch.from_numpy(images), built.preprocessing, Runtime(), 128
        ).numpy()
    model = LogisticRegression(max_iter=2000).fit(features["train"], [r["label"] for r in rows["train"]])
    return float(f1_score([r["label"] for r in rows["val"]], model.predict(features["val"]), average="macro"))


def contenders(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    old = json.loads(json.dumps(raw))
    old["stages"] = OLD_STAGES
    old["train"]["patience"] = None
    scratch = json.loads(json.dumps(raw))
    scratch["model"]["weights"] = None
    scratch["stages"]["head"]["epochs"] = 0
    scratch["stages"]["partial"]["epochs"] = 0
    scratch["stages"]["full"]["min_gain"] = None  # nothing before it to gate on
    scratch["stages"]["full"]["lr_decay"] = 1.0  # one rate for every block: random lower blocks have nothing to keep
    return {"ours (defaults)": raw, "old defaults": old, "scratch (our recipe, all blocks)": scratch}


def bench_task(task: str, args: argparse.Namespace) -> None:
    pretrain_half, target_half = TASKS[task]
    weights = backbone(pretrain_half, args.image_size, args.pretrain_budget)
    ws = workspace(target_half, args.fraction, args.image_size, weights)
    raw = base_params(args.image_size, weights)
    n = {name: sum(1 for _ in (ws / "data" / "splits" / f"{name}.csv").open()) - 1 for name in ("train", "val", "test")}
    print(
        f"\n== {task}: backbone pretrained on glyphs {pretrain_half}, fine-tuned on {target_half} "
        f"({args.fraction:g} of the families; train {n['train']} / val {n['val']} / test {n['test']}, "
        f"{args.image_size} px, cpu)",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    with_fastai = "fastai" not in args.skip
    start = functools.partial(start_fastai, ws, weights, args.image_size, args.threads)
    wait_fastai = start() if with_fastai and args.together else None
    for name, params in contenders(raw).items():
        if name.split()[0] in args.skip:
            continue
        results[name] = train_ours(ws, name.split()[0], params)
        print(
            f"  {name}: test macro-F1 {results[name]['macro_f1']:.4f} in {results[name]['train_seconds']:.0f} s",
            flush=True,
        )
    if with_fastai:
        fastai = (wait_fastai or start())()
        if fastai is not None:
            results["fastai fine_tune (1+9 epochs)"] = fastai
    print_table(task, results)
    ours = results.get("ours (defaults)")
    if ours:
        for stage, recipe in ours["recipes"].items():
            print(f"  {stage}: {recipe and recipe.get('reason')}; best val {recipe and recipe.get('best_value')}")
        head = ours["recipes"]["train_head"] or {}
        print(
            f"  head probe val macro-F1 {head.get('best_value', float('nan')):.4f} (C={head.get('C')}) vs "
            f"sklearn LogisticRegression {sklearn_probe(ws, raw):.4f}"
        )


def print_table(task: str, results: dict[str, dict[str, Any]]) -> None:
    peer = results.get("fastai fine_tune (1+9 epochs)")
    print(
        f"\n  {task:8s} {'contender':38s} {'test macro-F1':>13s} {'train s':>8s} {'CPU s':>8s} {'F1 - fastai':>11s} "
        f"{'err / fastai':>12s} {'time / fastai':>13s} {'CPU / fastai':>12s}"
    )
    for name, result in results.items():
        f1, seconds, cpu = result["macro_f1"], result["train_seconds"], result["train_cpu_seconds"]
        extra = ""
        if peer:
            error_ratio = (1 - f1) / max(1e-9, 1 - peer["macro_f1"])
            extra = (
                f" {f1 - peer['macro_f1']:+11.4f} {error_ratio:12.2f} {seconds / peer['train_seconds']:13.2f}"
                f" {cpu / peer['train_cpu_seconds']:12.2f}"
            )
        print(f"  {task:8s} {name:38s} {f1:13.4f} {seconds:8.1f} {cpu:8.1f}{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["forward", "reverse", "both"], default="both")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of font families used (by hash)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--pretrain-budget", type=float, default=300.0, help="seconds of backbone pretraining")
    parser.add_argument("--skip", nargs="*", default=[], help="contenders to leave out: ours old scratch fastai")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for every contender; 0 = torch's default")
    parser.add_argument(
        "--together",
        action="store_true",
        help="run fastai at the same time as ours (with --threads 1 on a shared machine: other load hits both alike)",
    )
    args = parser.parse_args()
    if not GLYPHS.is_dir():
        print(f"bench_recipe: skipped, {GLYPHS} is absent (it lives in the team's shared folder, not in a clone)")
        return 0
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.threads:  # on a shared machine one thread avoids OpenMP barriers waiting on descheduled threads
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from finetuner.common.stage import setup_logging

    setup_logging()
    for task in ["forward", "reverse"] if args.task == "both" else [args.task]:
        bench_task(task, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
