"""Write the HTML template that makes `dvc plots show` work offline: Vega, Vega-Lite and Vega-Embed inlined.

    python -m finetuner.cli.plots_template [.dvc/plots/offline.html]

DVC's default page loads those three scripts from a CDN, so on a machine without internet it shows no curves.
`.dvc/config` names this file as `plots.html_template`; `make env` writes it (the scripts come from the locked
vl-convert-python package, nothing is downloaded). The template has no `{scripts}` slot, so DVC adds no CDN tags.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_OUT = Path(".dvc/plots/offline.html")
# The placeholders DVC fills in (dvc_render.html.HTML); the inlined scripts must contain none of them.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC plots (offline)</title>
    <style>
        table { border-spacing: 15px; }
    </style>
    <script type="text/javascript">
{bundle}
    </script>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def offline_template(bundle: str) -> str:
    """The page with `bundle` (the Vega scripts) inlined; `</script` inside it is escaped so it cannot end the tag."""
    if any(placeholder in bundle for placeholder in PLACEHOLDERS):
        raise ValueError("the Vega bundle contains a DVC template placeholder; it cannot be inlined as is")
    safe = bundle.replace("</script", "<\\/script")
    return PAGE.replace("{bundle}", safe)


def vega_bundle() -> str:
    import vl_convert  # the JavaScript of Vega-Embed, Vega-Lite and Vega, shipped inside the wheel

    return vl_convert.javascript_bundle()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetuner.cli.plots_template", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(offline_template(vega_bundle()))
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB): `dvc plots show` now works offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
