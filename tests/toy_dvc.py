"""A toy DVC project with the pipeline's seven stage names and instant commands, for testing the flows.

Each stage runs `python toy.py <stage>` (a few file writes, no torch) and appends a line to `runs.log`, so a test
can see which stage commands actually ran and when. `data/raw/quality.txt` sets the score the toy evaluate gives
the model trained on that data, so a test decides whether a challenger is better than the champion. The toy
`tasks/evaluate.py` understands `--checkpoint PATH --out OUT.json` like the real one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "dedup", "split", "train_head", "train_partial", "train_full", "evaluate")

TOY_SCRIPT = r'''
"""Toy stages: tiny deterministic outputs derived from data/raw and params.yaml."""
import json, os, sys, time
from pathlib import Path
import yaml

stage = sys.argv[1]
start = time.time()
params = yaml.safe_load(Path("params.yaml").read_text())
print(f"toy {stage}: starting", flush=True)
if Path(f"refuse_{stage}").exists():  # like finetuner.common.stage.run_stage on bad input: exit code 2
    with open("runs.log", "a") as log:
        log.write(f"{stage} {start:.3f} {time.time():.3f} failed\n")
    print(f"{stage}: data/raw/images/cat/x.jpg: not an image", file=sys.stderr)
    sys.exit(2)
if Path(f"fail_{stage}").exists():
    if Path(f"fail_{stage}_once").exists():
        Path(f"fail_{stage}").unlink()
        Path(f"fail_{stage}_once").unlink()
    with open("runs.log", "a") as log:
        log.write(f"{stage} {start:.3f} {time.time():.3f} failed\n")
    sys.exit(f"toy {stage}: failing on purpose")

def write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

if stage == "ingest":
    files = sorted(p.relative_to("data/raw").as_posix() for p in Path("data/raw").rglob("*") if p.is_file())
    quality = float(Path("data/raw/quality.txt").read_text()) if Path("data/raw/quality.txt").exists() else 0.5
    write("data/interim/manifest.csv", "path\n" + "".join(f"{f}\n" for f in files))
    write("data/interim/quality.txt", str(quality))
elif stage == "dedup":
    write("data/interim/units.csv", Path("data/interim/manifest.csv").read_text())
elif stage == "split":
    rows = Path("data/interim/units.csv").read_text().splitlines()[1:]
    for name in ("train", "val", "test"):
        write(f"data/splits/{name}.csv", "path\n" + "".join(f"{r}\n" for r in rows))
elif stage.startswith("train_"):
    short = stage.removeprefix("train_")
    epochs = params["stages"][short]["epochs"]
    quality = float(Path("data/interim/quality.txt").read_text())
    write(f"models/{stage}/state.json", json.dumps({"epochs": epochs, "quality": quality}))
    write(f"reports/train/{stage}/plots/metrics/val/macro_f1.tsv",
          "step\tmacro_f1\n" + "".join(f"{e}\t{quality * (e + 1) / (epochs + 1):.4f}\n" for e in range(epochs)))
    if stage == "train_full":
        write("models/best.pt", json.dumps({"quality": quality, "head_epochs": params["stages"]["head"]["epochs"]}))
with open("runs.log", "a") as log:
    log.write(f"{stage} {start:.3f} {time.time():.3f} ok\n")
print(f"toy {stage}: done", flush=True)
'''

TOY_EVALUATE = r'''
"""Toy evaluate: the score of a toy checkpoint is the quality it was trained with."""
import argparse, base64, json, sys, time
from pathlib import Path

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR4nGM4ISeHFTEMLQkAkL9BAbKfPiIAAAAASUVORK5CYII="  # 8x8 red

parser = argparse.ArgumentParser()
parser.add_argument("--checkpoint", default="models/best.pt")
parser.add_argument("--out", default="reports/metrics.json")
args = parser.parse_args()
start = time.time()
quality = json.loads(Path(args.checkpoint).read_text())["quality"]
n_test = len(Path("data/splits/test.csv").read_text().splitlines()) - 1
scores = {"accuracy": quality, "macro_f1": quality, "balanced_accuracy": quality,
          "per_class": {"cat": {"f1": quality}}, "n_test": n_test}
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
Path(args.out).write_text(json.dumps(scores))
if args.out == "reports/metrics.json":  # a summary with a picture, as the real evaluate writes
    Path("reports/confusion_matrix.png").write_bytes(base64.b64decode(PNG))
    Path("reports/summary.md").write_text(f"# Toy summary\n\nmacro_f1 {quality}\n\n![confusion](confusion_matrix.png)\n")
with open("runs.log", "a") as log:
    log.write(f"evaluate {start:.3f} {time.time():.3f} ok {args.checkpoint}\n")
print(f"toy evaluate: {args.checkpoint} -> {quality}", flush=True)
'''


def _stage_block(stage: str, deps: list[str], params: list[str], outs: list[str]) -> str:
    lines = [
        f"  {stage}:",
        f"    cmd: python toy.py {stage}" if stage != "evaluate" else "    cmd: python -m tasks.evaluate",
    ]
    lines += ["    deps:"] + [f"      - {dep}" for dep in deps]
    if params:
        lines += ["    params:"] + [f"      - {param}" for param in params]
    lines += ["    outs:"] + [f"      - {out}" for out in outs]
    return "\n".join(lines)


DVC_YAML = (
    "stages:\n"
    + "\n".join(
        [
            _stage_block(
                "ingest",
                ["data/raw", "toy.py"],
                ["seed", "data"],
                ["data/interim/manifest.csv", "data/interim/quality.txt"],
            ),
            _stage_block("dedup", ["data/interim/manifest.csv"], ["dedup"], ["data/interim/units.csv"]),
            _stage_block(
                "split",
                ["data/interim/units.csv"],
                ["split"],
                ["data/splits/train.csv", "data/splits/val.csv", "data/splits/test.csv"],
            ),
            _stage_block(
                "train_head",
                ["data/splits/train.csv", "data/interim/quality.txt"],
                ["stages.head", "train"],
                ["models/train_head", "reports/train/train_head"],
            ),
            _stage_block(
                "train_partial",
                ["models/train_head"],
                ["stages.partial"],
                ["models/train_partial", "reports/train/train_partial"],
            ),
            _stage_block(
                "train_full",
                ["models/train_partial"],
                ["stages.full"],
                ["models/train_full", "reports/train/train_full", "models/best.pt"],
            ),
            _stage_block("evaluate", ["models/best.pt", "data/splits/test.csv", "tasks/evaluate.py"], [], []),
        ]
    )
    + "\n"
)
# Like the real dvc.yaml: the test metrics are a DVC metric kept in git, not in DVC's cache.
DVC_YAML = (
    DVC_YAML.removesuffix("    outs:\n") + "    metrics:\n      - reports/metrics.json:\n          cache: false\n"
)


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


def make_toy_project(project: Path, quality: float = 0.7, images: int = 3) -> Path:
    """A committed git + DVC repository at `project` with the repository's params.yaml and toy stages."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "toy.py").write_text(TOY_SCRIPT)
    (project / "tasks").mkdir()
    (project / "tasks" / "__init__.py").write_text("")
    (project / "tasks" / "evaluate.py").write_text(TOY_EVALUATE)
    (project / "dvc.yaml").write_text(DVC_YAML)
    # The toy stages load no weights; the flows check that a weights file params.yaml names exists, so name none.
    params = (REPO_ROOT / "params.yaml").read_text().replace("weights: models/demo_backbone.pt", "weights: null")
    (project / "params.yaml").write_text(params)
    add_data(project, quality, range(images))
    (project / ".dvc").mkdir()
    (project / ".dvc" / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    (project / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (project / ".gitignore").write_text("runs.log\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy")
    return project


def add_data(project: Path, quality: float, numbers: range) -> None:
    """New images (toy files) and the quality a model trained on the data will score."""
    for number in numbers:
        path = project / "data" / "raw" / "images" / "cat" / f"img{number}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"image {number}\n")
    (project / "data" / "raw" / "quality.txt").write_text(f"{quality}\n")


def stage_runs(project: Path) -> list[str]:
    """The stage commands that ran, in order (`evaluate <checkpoint>` for the scoring calls)."""
    log = project / "runs.log"
    if not log.exists():
        return []
    runs = []
    for line in log.read_text().splitlines():
        parts = line.split()
        runs.append(" ".join([parts[0], *parts[4:]]) if parts[3] == "ok" else f"{parts[0]} failed")
    return runs


def stage_intervals(project: Path) -> list[tuple[float, float]]:
    return [
        (float(line.split()[1]), float(line.split()[2])) for line in (project / "runs.log").read_text().splitlines()
    ]


def dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True, check=True)
