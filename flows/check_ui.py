"""Look at this project's artifacts in the Prefect UI with a real browser: `make check-ui` (needs `make server`).

    python -m flows.check_ui [--project-dir DIR] [--out .prefect/ui-check]

Publishes the project's current reports (no training) as a flow run `ui-check` on the running server, opens each
artifact page in headless Chromium, saves a screenshot per page, and checks the rendered page: the summary's
pictures are drawn from embedded data (the UI cannot reach files on this machine) and the tables have rows.
Exits 1 naming what did not render; 2 when the server or Chromium is missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from prefect import flow
from prefect.artifacts import Artifact
from prefect.settings import get_current_settings

from flows.connect import server_answers
from flows.finetune import DEFAULT_PROJECT
from flows.reports import publish_finetune_artifacts

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# What each artifact page must show once the UI's JavaScript has run.
EXPECTED = {
    "finetune-summary": ("<img", 'src="data:image/png;base64,'),
    "finetune-test-metrics": ("macro_f1",),
    "finetune-stages": ("train_head",),
    "finetune-reports": ("Reports",),
}


@flow(name="ui-check", description="Publish the project's current reports as artifacts (no training).")
def ui_check(project_dir: str = DEFAULT_PROJECT) -> str:
    from prefect.runtime import flow_run

    publish_finetune_artifacts(Path(project_dir))
    return str(flow_run.id)


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def render(browser: str, url: str, screenshot: Path | None, timeout_s: float = 120) -> str:
    """The page's DOM after its scripts ran (virtual time), and a screenshot of it unless `screenshot` is None."""
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,2000",
        "--virtual-time-budget=15000",
    ]
    if screenshot is not None:
        subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=timeout_s)
    return subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=timeout_s).stdout


def check(api_url: str, flow_run_id: str, browser: str, out: Path, screenshots: bool = True) -> list[str]:
    """Screenshot every artifact page of the run; return the problems found (empty when all rendered)."""
    ui = api_url.rstrip("/").removesuffix("/api")
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    for key, needles in EXPECTED.items():
        artifact = Artifact.get(key)
        if artifact is None or str(artifact.flow_run_id) != flow_run_id:
            problems.append(f"{key}: not created by this run")
            continue
        shot = out / f"{key}.png" if screenshots else None
        dom = render(browser, f"{ui}/artifacts/artifact/{artifact.id}", shot)
        missing = [needle for needle in needles if needle not in dom]
        print(f"{key}: {shot or 'rendered'}" + (f"  MISSING {missing}" if missing else "  ok"))
        if missing:
            problems.append(f"{key}: the rendered page lacks {missing}")
    if screenshots:
        render(browser, f"{ui}/runs/flow-run/{flow_run_id}?tab=Artifacts", out / "flow-run.png")
        print(f"flow run page: {out / 'flow-run.png'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", default=DEFAULT_PROJECT)
    parser.add_argument("--out", type=Path, default=Path(".prefect/ui-check"))
    parser.add_argument("--no-screenshots", action="store_true", help="only check the rendered pages")
    args = parser.parse_args(argv)
    api_url = get_current_settings().api.url
    browser = find_browser()
    if not api_url or not server_answers(api_url):
        print(f"check-ui: no Prefect server answers at {api_url}; start one with `make server`", file=sys.stderr)
        return 2
    if browser is None:
        print("check-ui: no Chromium found (Debian: `apt-get install chromium`)", file=sys.stderr)
        return 2
    if not (Path(args.project_dir) / "reports" / "summary.md").is_file():
        print(f"check-ui: {args.project_dir}/reports/summary.md is missing; run `make demo` first", file=sys.stderr)
        return 2
    run_id = ui_check(str(Path(args.project_dir).resolve()))
    problems = check(api_url, run_id, browser, args.out, screenshots=not args.no_screenshots)
    for problem in problems:
        print(f"check-ui: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
