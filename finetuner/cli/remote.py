"""Set up the project's default DVC remote: `make remote [REMOTE=<url>]` or `python -m finetuner.cli.remote [URL]`.

With no URL the remote is a local directory beside the project (`../<project>-dvc-storage`), enough for several
clones on one machine or a shared mount; `s3://bucket/path`, `gs://bucket/path` (and DVC's other URLs) work once the
matching DVC plugin is installed (`uv add 'dvc[s3]'` or `uv add 'dvc[gs]'`). The remote is written to `.dvc/config`
as the default (`-d`), so committing that file gives every clone the same remote; `--local` writes
`.dvc/config.local` instead (machine-specific paths, credentials). Then `make push` (`dvc push --run-cache`) uploads
data, models and the run cache, and in another clone `make pull` (`dvc pull --run-cache`) fetches them, after which
`dvc repro` finds every stage up to date.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

# URL scheme -> the DVC plugin package (import name, pip extra) that handles it.
PLUGINS = {
    "s3": ("dvc_s3", "s3"),
    "gs": ("dvc_gs", "gs"),
    "gcs": ("dvc_gs", "gs"),
    "azure": ("dvc_azure", "azure"),
    "ssh": ("dvc_ssh", "ssh"),
    "webdav": ("dvc_webdav", "webdav"),
    "hdfs": ("dvc_hdfs", "hdfs"),
}
BUILT_IN = ("", "file", "http", "https")


class RemoteError(ValueError):
    """A remote URL this environment cannot use; the message says why and what to install."""


def resolve_url(url: str | None, project: Path) -> str:
    """The remote URL to configure: a default local directory, an absolute local path, or a checked cloud URL."""
    if not url:
        return str(project.parent / f"{project.name}-dvc-storage")
    scheme = urlparse(url).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme in BUILT_IN:
        return str(Path(url).expanduser().resolve()) if not scheme else url
    if scheme not in PLUGINS:
        raise RemoteError(
            f"remote URL {url!r}: unknown scheme {scheme!r}; use a directory, s3://, gs://, azure://, "
            "ssh:// or https://"
        )
    module, extra = PLUGINS[scheme]
    if importlib.util.find_spec(module) is None:
        raise RemoteError(
            f"remote URL {url!r} needs DVC's {extra} plugin, which is not installed: run "
            f"`uv add 'dvc[{extra}]'` (it updates pyproject.toml and uv.lock), then `make remote` again"
        )
    return url


def configure(project: Path, url: str, name: str = "storage", local: bool = False) -> None:
    """`dvc remote add -d -f`: make `url` the project's default remote (replacing one of the same name)."""
    if url.startswith("/"):
        Path(url).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dvc", "remote", "add", "-d", "-f", *(["--local"] if local else []), name, url]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    if done.returncode != 0:
        raise RemoteError(f"dvc remote add failed in {project}: {done.stderr.strip() or done.stdout.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make URL (default: ../<project>-dvc-storage) the DVC remote.")
    parser.add_argument("url", nargs="?", default=None, help="a directory, s3://bucket/path, gs://bucket/path, ...")
    parser.add_argument("--project", type=Path, default=Path("."), help="the DVC project (default: here)")
    parser.add_argument("--name", default="storage", help="the remote's name in the DVC config")
    parser.add_argument("--local", action="store_true", help="write .dvc/config.local, not the committed config")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    if not (project / ".dvc").is_dir():
        print(f"remote: {project} is not a DVC project (no .dvc folder)", file=sys.stderr)
        return 2
    try:
        url = resolve_url(args.url, project)
        configure(project, url, args.name, args.local)
    except RemoteError as exc:
        print(f"remote: {exc}", file=sys.stderr)
        return 2
    config = ".dvc/config.local" if args.local else ".dvc/config"
    print(f"DVC remote {args.name!r} -> {url} (default, in {config}).")
    print(
        "Next: commit .dvc/config, `make push` here, `make pull` in another clone."
        if not args.local
        else "Next: `make push` here, `make pull` in another clone after `make remote` there."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
