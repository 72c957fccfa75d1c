"""The real-photo variant set `bench_dedup_quality.py` scores on: wallpapers and scikit-image samples, edited.

Sources (nothing is downloaded at run time by the pipeline; this benchmark fetches Debian packages itself once):
- Debian's `plasma-workspace-wallpapers` and `lomiri-wallpapers` (`apt-get download` + `dpkg -x` into the cache
  directory when `apt-get` is there; otherwise the message says how);
- scikit-image's bundled sample images, read from the benchmark-only env `benchmarks/envs/dedup-peers` when built.
Each base picture (longest side 640) gets the edits a collection really holds: `must` (re-encode, rescale, blur,
brightness, PNG), `crop` (border crops up to 10%), `hard` (mirror, caption bar, letterbox), and `more`, beyond issue
15's list (resized to another shape, a white mat); and each is seen through a circular black field of view
(`framed`, for precision only: pictures framed alike must not pair). Negatives have no
edits: different photos, near-blank and smooth images, "twin designs" (light and dark versions of one wallpaper),
two photos of one scene (a stereo pair), small faces. A pair is a true near-duplicate iff both files share a base.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

MUST = ("reencode", "rescale", "blur", "brightness", "png")
CROP = ("crop5", "crop10", "crop10_2")
HARD = ("mirror", "caption", "letterbox")
# Beyond issue 15's list: resized to another shape, framed in a white mat. Every picture is also seen through a
# circular black field of view (a fundus camera, a microscope: kind "framed"), scored for precision only: pictures
# framed alike are strangers, and a disc cut from a picture is too heavy an edit to count it against recall.
MORE = ("stretch", "mat")
KINDS = {
    **{k: "must" for k in MUST},
    **{k: "crop" for k in CROP},
    **{k: "hard" for k in HARD},
    **{k: "more" for k in MORE},
}
PACKAGES = ("plasma-workspace-wallpapers", "lomiri-wallpapers")
SIDE = 640
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
    "clock_motion",
    "cell",
    "ihc",
    "logo",
    "color",
    "microaneurysms",
)


def fetch_wallpapers(cache: Path) -> Path | None:
    """The unpacked Debian wallpaper packages under cache/debs, fetching them once; None (with a message) if not."""
    root = cache / "debs"
    if (root / ".done").exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        print(
            f"no apt-get/dpkg: run `apt-get download {' '.join(PACKAGES)}` and `dpkg -x NAME.deb {root}` "
            "on a Debian machine, then rerun"
        )
        return None
    root.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=root, check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"could not fetch {PACKAGES} ({exc}); try `apt-get update` first, then rerun")
        return None
    for deb in root.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    (root / ".done").touch()
    return root


def wallpaper_bases(root: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(one landscape image per wallpaper, the dark twins of some): the largest landscape file of each folder."""
    bases, twins = [], []
    for folder in sorted({p.parent for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".jpeg")}):
        files = [p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png", ".jpeg")]
        landscape = [p for p in files if _size(p)[0] > _size(p)[1] and "screenshot" not in p.name]
        if not landscape:
            continue
        best = max(landscape, key=lambda p: _size(p)[0])
        name = folder.parent.parent.name if folder.name.startswith("images") else folder.name
        (twins if folder.name == "images_dark" else bases).append(
            (f"{name}{'-dark' if 'dark' in folder.name else ''}", best)
        )
    return bases, twins


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def skimage_dir(peer_python: Path) -> Path | None:
    if not peer_python.exists():
        return None
    found = subprocess.run(
        [str(peer_python), "-c", "import skimage.data, os; print(os.path.dirname(skimage.data.__file__))"],
        capture_output=True,
        text=True,
    )
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def _load(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.draft("RGB", (SIDE, SIDE))
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    rgb.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    return rgb


def edit(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """One near-duplicate edit of `image`."""
    w, h = image.size
    if kind == "reencode":
        return Image.open(io.BytesIO(_jpeg(image, 35))).convert("RGB")
    if kind == "rescale":
        return image.resize((w * 3 // 5, h * 3 // 5), Image.Resampling.BILINEAR)
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(2.5))
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(float(rng.choice([0.75, 1.3])))
    if kind == "png":
        return image
    if kind.startswith("crop"):  # up to `share` of each side cut away, unevenly: one edge more than the other
        share = 0.05 if kind == "crop5" else 0.10
        cut = [rng.uniform(0, share) for _ in range(4)]
        if kind == "crop10":  # all of it from one side
            cut = [0.0, 0.0, 0.0, 0.0]
            cut[int(rng.integers(4))] = share
        return image.crop((round(cut[0] * w), round(cut[1] * h), w - round(cut[2] * w), h - round(cut[3] * h)))
    if kind == "mirror":
        return ImageOps.mirror(image)
    if kind == "caption":
        out = image.copy()
        draw = ImageDraw.Draw(out)
        bar = int(h * 0.12)
        draw.rectangle([0, h - bar, w, h], fill=(20, 20, 20))
        draw.text(
            (w // 20, h - bar + bar // 4),
            "Holiday 2024 - do not share",
            fill=(240, 240, 240),
            font_size=max(10, bar // 2),
        )
        return out
    if kind == "stretch":  # resized to another shape: 25% wider
        return image.resize((w * 5 // 4, h), Image.Resampling.BICUBIC)
    if kind == "mat":  # a white mat, 5% of each side
        out = Image.new("RGB", (w + w // 10, h + h // 10), (255, 255, 255))
        out.paste(image, (w // 20, h // 20))
        return out
    if kind == "framed":  # the centre square seen through a circle on black, as a fundus camera shows its field
        side = min(w, h)
        square = image.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).ellipse((side // 25, side // 25, side - side // 25, side - side // 25), fill=255)
        out = Image.new("RGB", (side, side), (0, 0, 0))
        out.paste(square, (0, 0), mask)
        return out
    if kind == "letterbox":  # into a canvas of the other aspect: bars top/bottom or left/right
        canvas = (w, int(w * 0.75)) if w / h > 1.4 else (int(h * 16 / 9), h)
        out = Image.new("RGB", canvas, (0, 0, 0))
        out.paste(image, ((canvas[0] - w) // 2, (canvas[1] - h) // 2))
        return out
    raise ValueError(kind)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def smooth_images(count: int, rng: np.random.Generator) -> list[Image.Image]:
    """Near-blank and smooth negatives: flat colours with sensor noise, linear and radial gradients."""
    out = []
    y, x = np.mgrid[0:360, 0:480] / 480.0
    for k in range(count):
        base = rng.uniform(30, 220, 3)
        if k % 3 == 0:
            field = np.zeros((360, 480, 1)) + base
        elif k % 3 == 1:
            angle = rng.uniform(0, 2 * np.pi)
            field = base + (np.cos(angle) * x + np.sin(angle) * y)[..., None] * rng.uniform(-80, 80, 3)
        else:
            cx, cy = rng.uniform(0.2, 0.8, 2)
            field = base + np.hypot(x - cx, y - cy)[..., None] * rng.uniform(-120, 120, 3)
        field = field + rng.normal(0, 2.0, field.shape[:2] + (1,))
        out.append(Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)))
    return out


def build(cache: Path, peer_python: Path, wallpapers: Path | None = None) -> list[tuple[str, str, str]] | None:
    """(path, base, kind) of every file of the set, generated once into cache/set; None when sources are missing.

    `wallpapers`: a folder where the Debian packages are already unpacked (else they are fetched into cache)."""
    root = wallpapers if wallpapers is not None and wallpapers.is_dir() else fetch_wallpapers(cache)
    if root is None:
        return None
    out_dir = cache / "set-v2"  # v2: the MORE edits
    index = out_dir / "index.tsv"
    if index.exists():
        return [tuple(line.split("\t")) for line in index.read_text().splitlines()]
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bases, twins = wallpaper_bases(root)
    items: list[tuple[str, str, str]] = []
    sk = skimage_dir(peer_python)
    sk_files = [p for name in SKIMAGE_PHOTOS for p in (sk.glob(f"{name}.*") if sk else [])]
    for name, path in [*bases, *((f"sk-{p.stem}", p) for p in sk_files)]:
        image = _load(path)
        items.append(_save(out_dir, name, "orig", image))
        for kind in KINDS:
            items.append(_save(out_dir, name, kind, edit(image, kind, rng)))
        items.append(_save(out_dir, name, "framed", edit(image, "framed", rng)))
    for name, path in twins:
        items.append(_save(out_dir, name, "negative", _load(path)))
    for k, image in enumerate(smooth_images(24, rng)):
        items.append(_save(out_dir, f"smooth{k:02d}", "negative", image))
    if sk is not None:
        for name in ("motorcycle_left", "motorcycle_right"):  # two photographs of one scene: not copies
            items.append(_save(out_dir, f"sk-{name}", "negative", _load(sk / f"{name}.png")))
        faces = np.load(sk / "lfw_subset.npy")[:60]
        for k, face in enumerate(faces):
            grey = Image.fromarray((face * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
            items.append(_save(out_dir, f"face{k:02d}", "negative", grey.convert("RGB")))
    index.write_text("\n".join("\t".join(item) for item in items))
    return items


def _save(out_dir: Path, base: str, kind: str, image: Image.Image) -> tuple[str, str, str]:
    path = out_dir / f"{base}__{kind}.{'png' if kind in ('png', 'negative') else 'jpg'}"
    if path.suffix == ".png":
        image.save(path)
    else:
        path.write_bytes(_jpeg(image, 90))
    return str(path), base, kind
