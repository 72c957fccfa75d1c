"""dvc.yaml cannot drift from the code: every stage's `deps` list each project file its command imports, and its
`params` every params.yaml key its code reads.

A missing dep is a correctness bug, not taste: `dvc repro` would keep a stale model after a change to a module
the stage imports, or after a change to a key it reads. Both lists are derived statically (ast), from the stage's
`python -m <module>` command through the transitive closure of project imports.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from finetuner.config import Params
from finetuner.train.stage import STAGES as TRAINING_STAGES

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("finetuner", "tasks", "flows")
# Methods called on a params section read the whole section: `params.split.fractions.model_dump()` reads
# `split.fractions`. The chain is cut before them.
SECTION_METHODS = {"model_dump", "model_dump_json", "items", "keys", "values", "get"}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    if not name.startswith(PROJECT_PACKAGES):
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, root: Path = ROOT) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ((base,) if base else ()))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def lazy_exports(init: Path) -> dict[str, str]:
    """A package's `lazy_exports(__name__, {name: module})` table (finetuner/__init__.py): `from pkg import name`
    runs `pkg.module`."""
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"), str(init))):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_exports"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Dict)
        ):
            return {
                key.value: value.value
                for key, value in zip(node.args[1].keys, node.args[1].values)
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant)
            }
    return {}


def import_closure(entry: Path, root: Path = ROOT) -> set[Path]:
    """Every project file that running `entry` imports, the packages' __init__ files on the way included."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path, root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:i]), root)
                if found is not None and found.name == "__init__.py" and i < len(parts):
                    module = lazy_exports(found).get(parts[i])
                    exported = module_file(".".join([*parts[:i], module]), root) if module else None
                    if exported is not None and exported not in seen:
                        todo.append(exported)
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def params_read(path: Path) -> set[str]:
    """Dotted params keys read as `params.<section>[.<key>...]` chains in one file (`params` = the Params object).

    `getattr(params.stages, name)` reads one stage's section, chosen at run time: it is recorded as `stages.*`, which
    `stage_gaps` resolves through finetuner/train/stage.py's STAGES table (the one place a stage's section is named).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    dynamic = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and node.args
    }
    keys = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue  # only the outermost attribute of a chain
        suffix = ".*" if id(node) in dynamic else ""
        chain = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if not (isinstance(node, ast.Name) and node.id == "params"):
            continue
        chain.reverse()
        if chain[0] in ("model_dump", "model_dump_json"):
            keys.add("<all params>")  # the whole Params object: every key
            continue
        for i, attr in enumerate(chain):
            if attr in SECTION_METHODS:
                chain = chain[:i]
                break
        if chain and chain[0] in Params.model_fields:
            keys.add(".".join(chain) + suffix)
    return keys


def stage_entry(cmd: str, root: Path = ROOT) -> Path | None:
    match = re.search(r"-m\s+([\w.]+)", cmd)
    return module_file(match.group(1), root) if match else None


def declared(entries: list) -> list[str]:
    return [str(e if isinstance(e, str) else next(iter(e))).split("#")[0].strip().rstrip("/") for e in entries]


def covered(item: str, declared_items: list[str]) -> bool:
    return any(item == d or item.startswith(d + ".") or item.startswith(d + "/") for d in declared_items)


def stage_gaps(stage: dict, root: Path = ROOT, name: str = "") -> tuple[list[str], list[str]]:
    """(imported project files the stage's deps miss, params keys its code reads that its params miss)."""
    entry = stage_entry(stage.get("cmd", ""), root)
    assert entry is not None, f"cannot find the module of {stage.get('cmd')!r}"
    files = import_closure(entry, root)
    deps, params = declared(stage.get("deps", [])), declared(stage.get("params", []))
    missing_files = sorted(
        rel
        for rel in (f.relative_to(root).as_posix() for f in files)
        if not covered(rel, deps) and not _trivial_init(root / rel)
    )
    keys = set().union(*(params_read(f) for f in files))
    if name in TRAINING_SECTIONS:
        keys = {TRAINING_SECTIONS[name] if key == "stages.*" else key for key in keys}
    missing_keys = sorted(k for k in keys if not covered(k, params))
    return missing_files, missing_keys


def _trivial_init(path: Path) -> bool:
    return path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip().replace('"', "").strip()


TRAINING_SECTIONS = {stage: f"stages.{section}" for stage, (section, _) in TRAINING_STAGES.items()}
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_imports_and_params(name):
    missing_files, missing_keys = stage_gaps(STAGES[name], name=name)
    assert not missing_files, f"dvc.yaml stage {name}: deps miss imported files {missing_files}"
    assert not missing_keys, f"dvc.yaml stage {name}: params miss keys its code reads {missing_keys}"


def test_the_check_catches_a_new_import_and_a_new_key(tmp_path):
    """The derivation would fail if a stage started importing a module or reading a key without declaring it."""
    for package in ("tasks", "finetuner"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "finetuner" / "helper.py").write_text("def seeded(params):\n    return params.train.seed_offset\n")
    (tmp_path / "tasks" / "stage.py").write_text(
        "from finetuner.helper import seeded\n\ndef work(params):\n    cfg = params.split\n"
        "    stage = getattr(params.stages, 'head')\n"
        "    return seeded(params), params.data.image_size, params.model_dump()\n"
    )
    stage = {"cmd": "python -m tasks.stage", "deps": ["tasks/stage.py"], "params": ["data"]}
    missing_files, missing_keys = stage_gaps(stage, tmp_path)
    assert missing_files == ["finetuner/helper.py"]
    assert missing_keys == ["<all params>", "split", "stages.*", "train.seed_offset"]
    stage["deps"].append("finetuner")
    stage["params"] += ["split", "train", "stages"]
    assert stage_gaps(stage, tmp_path) == ([], ["<all params>"])


def test_a_name_imported_from_a_package_counts_the_module_that_defines_it(tmp_path):
    """`from finetuner.pkg import thing` runs the module `lazy_exports` maps `thing` to: it is a dependency too."""
    for package in ("tasks", "finetuner", "finetuner/pkg"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "finetuner" / "pkg" / "__init__.py").write_text(
        "from finetuner import lazy_exports\n\n__getattr__, __all__ = lazy_exports(__name__, {'thing': 'impl'})\n"
    )
    (tmp_path / "finetuner" / "pkg" / "impl.py").write_text("thing = 1\n")
    (tmp_path / "tasks" / "stage.py").write_text("from finetuner.pkg import thing\n")
    stage = {"cmd": "python -m tasks.stage", "deps": ["tasks/stage.py"], "params": []}
    assert stage_gaps(stage, tmp_path)[0] == ["finetuner/pkg/__init__.py", "finetuner/pkg/impl.py"]
