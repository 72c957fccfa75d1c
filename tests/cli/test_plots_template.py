"""`dvc plots show` works offline: the page DVC writes with the project's template carries Vega inline and loads
nothing from a CDN (the default page does, and shows no curves without internet)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finetuner.cli.plots_template import offline_template, vega_bundle


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True, check=True)


def test_plots_show_page_is_self_contained(tmp_path, repo_root):
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    _dvc(project, "init", "-q")
    shutil.copy(repo_root / ".dvc" / "config", project / ".dvc" / "config")  # names plots/offline.html
    (project / ".dvc" / "plots").mkdir()
    (project / ".dvc" / "plots" / "offline.html").write_text(offline_template(vega_bundle()))
    (project / "curve.tsv").write_text("step\tmacro_f1\n0\t0.5\n1\t0.7\n")
    (project / "dvc.yaml").write_text("plots:\n  - curve.tsv:\n      x: step\n      y: macro_f1\n")

    _dvc(project, "plots", "show", "-o", "out")

    page = (project / "out" / "index.html").read_text()
    assert "<script src=" not in page and "cdn.jsdelivr" not in page
    assert "window.vegaEmbed=" in page and "vegaEmbed('#" in page and '"macro_f1"' in page


def test_template_refuses_a_bundle_with_dvc_placeholders():
    assert "</script>alert" not in offline_template("var a = '</script>alert';")
    with pytest.raises(ValueError, match="placeholder"):
        offline_template("var a = '{plot_divs}';")
