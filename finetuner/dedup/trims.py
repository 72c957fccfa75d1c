"""Where a picture's content lies inside its frame: uniform borders (letterbox / pillarbox bars, a plain mat, the line
where one blends into the picture) and caption panels (a plain band with text on it) stripped, in up to two layers
(bars around a plain ground); and a picture shown on a plain ground among other marks (a social post, an app's window)
found as the solid region off that ground. The `trim` view (finetuner/dedup/views.py) hashes what is left; the
prescreen and the verifier compare it. Pure functions on 64x64 grey thumbnails.
"""

from __future__ import annotations

import cv2
import numpy as np

FLAT_STD = 3.0  # grey levels: an edge row or column flatter than this is a bar or mat
BAR_TOLERANCE = 10.0  # grey levels: ...when its mean is this close to the outermost row/column's
MAX_TRIM = 0.3  # never strip more than this share of a side from one edge
BLEND_MIN = 0.05  # the least share of the bar a line after it must carry to be stripped as the bar's blended edge...
BLEND_SPAN = 0.8  # ...and the least share of its pixels it moves off the bar's shade (a letter's first row: a few)
# A second blended line is stripped only when it carries this share of the bar: an edge softened over two lines (61,
# 74, 151, then 236 after a window's title bar: 0.93 and 0.49), not a picture's first line, which the decoder's
# scaling brightens by ~0.1 of the bar beside it (a white mat's edge: 0.06-0.12)
BLEND_SECOND = 0.25
CHUNK = 2048  # thumbnails per batch of per-image statistics
# A caption panel (a meme's caption, a headline added above or below a picture) is a plain band with text on it: it
# starts with a line of one shade at the edge and runs through the last such line before the picture, those lines at
# most PANEL_STD from flat (a panel is drawn; a low-contrast photograph's edge is 2-5), and at least PANEL_PLAIN of the
# band's pixels are of that shade (the panel's ground between and around the letters; the letters may be anything).
# Counted by lines instead, a caption whose letters fill 5 of its 7 lines at 64x64 was no panel. Where the text
# reaches the line the picture starts on, no plain line follows it: the band then runs through the last line mostly
# of the bar's shade before the share drops by PANEL_STEP, where the rest of the frame is mostly another shade (a
# letter's serifs before its stem on its paper are no caption)
PANEL_STD = 1.0
PANEL_PLAIN = 0.5
PANEL_STEP = 0.5  # a caption's text reaching the picture: the share of the bar's shade drops this much at its end...
PANEL_LINES = 2  # ...at least this many lines past the bar's plain ones and their blend
# Bars around a plain ground (a product on white, letterboxed; a picture in an app's window): the ground is stripped as
# a second layer when the bars' shade differs from it by NEST_CONTRAST on every stripped side (a side stripped as a
# panel of the ground's own shade, text on a window's canvas, is ground already), what the bars frame
# varies by NEST_MIN_STD (a near-blank frame's flat edges are no ground) and the ground is within NEST_FLAT_STD of
# flat (drawn, not a photograph's smooth edge); only inside a NEST_MIN_SIDE square or more
NEST_CONTRAST = 40.0
NEST_MIN_STD = 20.0
NEST_FLAT_STD = 1.5
NEST_MIN_SIDE = 16
# A picture shown in a page or a window (a social post, an app's window with a side panel): a solid rectangle on a plain
# ground, where the other marks (an avatar, a side panel, lines of text) are not bars at the frame's edge, so neither
# layer reaches the picture. The ground is the shade (within GROUND_TOLERANCE) that covers GROUND_BORDER of the
# frame's border or more; the picture is the largest connected region off it, at least SOLID of its box, the box
# PICTURE_MIN to PICTURE_MAX of the frame, MARGIN pixels or more inside every edge (a photograph's own bright sky,
# taken for a white ground, leaves the rest touching the edges), ringed by ground (RING_GROUND of the line around it)
# and with ground reaching into its box from outside on at most BAYS of it (a bold letter, nearly as solid, has its
# paper in its bays: 0.025 and up on the glyph set). A picture whose own edge is as bright as a white ground has bays
# too (0.022-0.073 on the composed set: a patch of sky, a graphic's white stripe); up to TEXTURED_BAYS they are
# allowed where the inside is a picture's, not a letter's: at most SHADE_SHARE of its pixels lie within SHADE_SPAN grey
# levels of any one shade. A letter is ink of one shade (0.46-0.66 of its box for the 10 bold letters of both glyph
# sets that have bays and pass every other test); a photograph, even a smooth graphic's shading, spreads over many
# (0.12-0.31; 0.67 for a smooth retina, whose bays are past the limit). Only images whose region off the ground keeps
# CORE_MIN of the frame after two steps of erosion are looked at: most letters' strokes on their paper do not.
GROUND_TOLERANCE = 3
GROUND_BORDER = 0.35
SOLID = 0.9
BAYS = 0.02
TEXTURED_BAYS = 0.06
SHADE_SHARE = 0.38
SHADE_SPAN = 8
PICTURE_MIN, PICTURE_MAX = 0.2, 0.9
MARGIN = 2
RING_GROUND = 0.8
CORE_MIN = 0.1


def _edge_runs(lines: np.ndarray, flat_std: float = FLAT_STD) -> np.ndarray:
    """Per stack item, how many leading rows of `lines` (n, rows, pixels) form a flat bar of one shade, or a caption
    panel (plain rows of the bar's shade with text between them, or a band mostly of the bar's shade: see PANEL_STD
    and the constants after it), whichever is longer; a bar's lines are within `flat_std` of flat."""
    limit = int(lines.shape[1] * MAX_TRIM)
    rows = lines[:, :limit].astype(np.int32)  # no run can be longer: the rows beyond need no statistics
    width = rows.shape[2]
    # std and mean in exact integers, scaled by the width: std < FLAT_STD <=> width * sum(x^2) - sum(x)^2 <
    # (FLAT_STD * width)^2 (one pass, no float temporaries: this runs on every thumbnail)
    total = rows.sum(axis=2)
    spread = width * np.einsum("nrp,nrp->nr", rows, rows) - total * total
    shade = np.abs(total - total[:, :1]) < BAR_TOLERANCE * width  # rows of the outermost row's shade
    flat = (spread < (flat_std * width) ** 2) & shade
    run = np.where(flat.all(axis=1), flat.shape[1], np.argmin(flat, axis=1))
    plain = (spread < (PANEL_STD * width) ** 2) & shade
    band = plain.shape[1] - np.argmax(plain[:, ::-1], axis=1)  # through the last plain row
    panel = plain[:, 0] & (plain.sum(axis=1) >= PANEL_PLAIN * band)
    # a caption whose letters fill most of its lines, or whose text reaches the line where the picture starts: the
    # band runs through the last line whose pixels are mostly (PANEL_PLAIN) the edge line's shade where the next
    # line's share is PANEL_STEP lower (the picture starts), most of the band's pixels are that shade (the ground
    # between and around the letters), and it reaches PANEL_LINES or more past the lines that blend the bar into the
    # picture (`_blend_line`). A shape on its paper that widens across the lines is no such edge. Looked at only where
    # the lines do not decide and a plain edge line starts a band.
    k = np.flatnonzero(plain[:, 0] & ~(panel & (band > run)) & (run < limit))
    if len(k):
        near = np.abs(lines[k].astype(np.int32) * width - total[k, :1, None]) < BAR_TOLERANCE * width
        share = near.mean(axis=2)  # (k, lines): per line, the share of the edge's shade
        mean = np.cumsum(share[:, :limit], axis=1) / np.arange(1, limit + 1)
        drop = share[:, 1 : limit + 1] <= share[:, :limit] - PANEL_STEP
        ends = (share[:, :limit] >= PANEL_PLAIN) & drop & (mean >= PANEL_PLAIN)
        last = limit - np.argmax(ends[:, ::-1], axis=1)  # through the last such line
        blended = run[k] + _blend_line(lines[k], run[k], flat_std)  # a bar's blended edge is no caption...
        panel[k] = ends.any(axis=1) & (last >= blended + PANEL_LINES)  # ...nor a shape's soft edge: one line
        # ...nor a letter's serif on its paper: what lies past the band, the rest of the frame, is mostly another shade
        rest = share.shape[1] - last
        after = np.cumsum(share[:, ::-1], axis=1)[np.arange(len(k)), rest - 1] / rest
        panel[k] &= after < PANEL_PLAIN
        band[k] = np.where(panel[k], last, band[k])
    return np.minimum(np.where(panel, np.maximum(run, band), run), limit)


def _blend_line(lines: np.ndarray, runs: np.ndarray, flat_std: float = FLAT_STD) -> np.ndarray:
    """How many lines (0, 1 or 2) after a bar of `runs` lines blend the bar into the line after them. A bar that does
    not end on a thumbnail pixel leaves a line that averages the two (a white mat's edge: 238 between 255 and 64):
    neither bar nor picture, it is a strong edge two pictures framed alike share. Softened by the decoder's scaling,
    an edge can spread over two such lines (a window's title bar: 61, 74, 151, then its canvas at 236). A line that
    only starts the picture (a letter's first row on its paper) is no such blend, and stays."""
    out = np.zeros(len(lines), np.int64)
    for second, least in enumerate((BLEND_MIN, BLEND_SECOND)):
        at = runs + out
        k = np.flatnonzero((runs > 0) & (at + 2 <= lines.shape[1]) & (out == second))  # a second after a first only
        if len(k) == 0:
            break
        bar = lines[k, runs[k] - 1].astype(np.float32).mean(axis=1, keepdims=True)
        line, after = lines[k, at[k]].astype(np.float32), lines[k, at[k] + 1].astype(np.float32)
        towards = bar - after  # the blend is after + alpha * (bar - after), one alpha for the whole line
        alpha = (towards * (line - after)).sum(axis=1) / np.maximum((towards * towards).sum(axis=1), 1e-6)
        residual = np.abs(line - after - alpha[:, None] * towards).mean(axis=1)
        moved = (np.abs(line - bar) >= BAR_TOLERANCE).mean(axis=1)  # a blend moves (nearly) the whole line
        out[k] += (alpha > least) & (alpha < 1) & (residual < flat_std) & (moved >= BLEND_SPAN)
    return out


def trim_boxes(thumbs: np.ndarray) -> np.ndarray:
    """(n, 4) of (top, bottom, left, right): the content inside uniform borders; the whole frame when there are none
    (or when the frame is nearly blank, so nothing is content). Where bars frame a plain ground of another shade (a
    product shot on white, letterboxed; a picture in an app's window), the ground is stripped too (`_inside_ground`);
    and a picture on a plain ground among other marks (a post, a window with a side panel) is taken as the solid
    region off that ground (`_picture_on_ground`) where that box is the tighter."""
    grey = np.asarray(thumbs)
    h, w = grey.shape[1:]
    boxes = np.empty((len(grey), 4), np.int64)
    for s in range(0, len(grey), CHUNK):  # bounded temporaries: whole-collection ones cost more than the arithmetic
        boxes[s : s + CHUNK] = _layer_boxes(grey[s : s + CHUNK], FLAT_STD)
    boxes[_blank(boxes, h, w)] = (0, h, 0, w)
    for k in np.flatnonzero((boxes != (0, h, 0, w)).any(axis=1)).tolist():
        boxes[k] = _inside_ground(grey[k], boxes[k])
    for s in range(0, len(grey), CHUNK):
        shades, looked = _grounds(grey[s : s + CHUNK])
        for k in looked.tolist():
            picture = _picture_on_ground(grey[s + k], int(shades[k]))
            if picture is not None and _tighter(picture, boxes[s + k]):
                boxes[s + k] = picture
    return boxes


def _grounds(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shade, candidates): per image the shade whose GROUND_TOLERANCE covers most of its border, and which images
    may show a picture on that ground (it covers GROUND_BORDER of the border, and what lies off it keeps CORE_MIN of
    the frame after two steps of erosion)."""
    n, h, w = grey.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    border = np.concatenate([grey[:, 0], grey[:, -1], grey[:, :, 0], grey[:, :, -1]], axis=1).astype(np.int64)
    span = 256 + 2 * GROUND_TOLERANCE
    at = np.arange(n)[:, None] * span + border + GROUND_TOLERANCE  # shade v counted at v + tol
    counts = np.bincount(at.ravel(), minlength=n * span).reshape(n, span)
    within = np.cumsum(np.pad(counts, ((0, 0), (1, 0))), axis=1)
    near = within[:, 2 * GROUND_TOLERANCE + 1 :] - within[:, : -2 * GROUND_TOLERANCE - 1]  # border within tol of v
    share = near.max(axis=1) / border.shape[1]
    # of the shades whose window covers most, the one most pixels have (a canvas of 240 is covered from 237 to 243)
    exact = counts[:, GROUND_TOLERANCE : GROUND_TOLERANCE + 256]
    shades = np.argmax(np.where(near == near.max(axis=1, keepdims=True), exact, -1), axis=1)
    candidates = np.flatnonzero(share >= GROUND_BORDER)
    if len(candidates):
        off = np.abs(grey[candidates].astype(np.int16) - shades[candidates, None, None]) > GROUND_TOLERANCE
        for _ in range(2):
            core = np.zeros_like(off)
            core[:, 1:-1, 1:-1] = off[:, 1:-1, 1:-1] & off[:, :-2, 1:-1] & off[:, 2:, 1:-1]
            core[:, 1:-1, 1:-1] &= off[:, 1:-1, :-2] & off[:, 1:-1, 2:]
            off = core
        candidates = candidates[off.sum(axis=(1, 2)) >= CORE_MIN * h * w]
    return shades, candidates


def _picture_on_ground(grey: np.ndarray, shade: int) -> tuple[int, int, int, int] | None:
    """The box (top, bottom, left, right) of a picture shown on a plain ground of `shade` (see GROUND_TOLERANCE and
    the constants after it), or None."""
    h, w = grey.shape
    off = (np.abs(grey.astype(np.int16) - shade) > GROUND_TOLERANCE).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(off, connectivity=4)
    if count < 2:
        return None
    left, top, width, height, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))].tolist()
    bottom, right = top + height, left + width
    if not PICTURE_MIN * h * w <= width * height <= PICTURE_MAX * h * w:
        return None
    if min(top, left, h - bottom, w - right) < MARGIN or off[top:bottom, left:right].mean() < SOLID:
        return None
    on = 1 - off  # the ground's pixels
    ring = np.concatenate(
        [
            on[top - 1, left - 1 : right + 1],
            on[bottom, left - 1 : right + 1],
            on[top:bottom, left - 1],
            on[top:bottom, right],
        ]
    )
    if ring.mean() < RING_GROUND:
        return None
    # ground reaching into the box from outside is a shape's bays (a bold letter's), not a picture's stray pixels
    _, ground = cv2.connectedComponents(on, connectivity=4)
    outside = np.unique(np.concatenate([ground[0], ground[-1], ground[:, 0], ground[:, -1]]))
    bays = np.isin(ground[top:bottom, left:right], outside[outside > 0]).mean()
    if bays > BAYS and (
        bays > TEXTURED_BAYS or _one_shade(grey[top + 1 : bottom - 1, left + 1 : right - 1]) > SHADE_SHARE
    ):
        return None
    # its edge lines go with the ground: unless the picture ends on a thumbnail pixel they blend the two (a line the
    # blend test of bars, `_blend_line`, misses on a textured picture), and two pictures on one ground then share a
    # blended outline and correlate through it (2 false pairs on the composed set)
    return top + 1, bottom - 1, left + 1, right - 1


def _one_shade(inside: np.ndarray) -> float:
    """The largest share of `inside`'s pixels within SHADE_SPAN grey levels of one shade."""
    counts = np.bincount(inside.astype(np.int64).ravel(), minlength=256)  # grey levels as integers, as `_grounds`
    within = np.convolve(counts, np.ones(2 * SHADE_SPAN + 1, np.int64), mode="same")
    return float(within.max() / inside.size)


def _tighter(picture: tuple[int, int, int, int], box: np.ndarray) -> bool:
    """Whether the picture's box lies inside the layers' `box` (a pixel's slack for a blended edge) and cuts 2 pixels
    or more more off some side: where the layers already reach the picture (bars, a mat, a product's studio ground
    inside bars) they stand."""
    top, bottom, left, right = box.tolist()
    inside = picture[0] >= top - 1 and picture[1] <= bottom + 1 and picture[2] >= left - 1 and picture[3] <= right + 1
    return inside and max(abs(p - b) for p, b in zip(picture, (top, bottom, left, right))) >= 2


def _layer_boxes(stack: np.ndarray, flat_std: float) -> np.ndarray:
    """(n, 4) boxes inside one layer of borders of each (n, h, w) image: bars within `flat_std` of flat, caption
    panels, and the line where a bar blends into the picture."""
    h, w = stack.shape[1:]
    flip = stack.transpose(0, 2, 1)
    sides = (stack, stack[:, ::-1], flip, flip[:, ::-1])
    runs = np.stack([_edge_runs(lines, flat_std) for lines in sides], axis=1)
    runs += np.stack([_blend_line(lines, run, flat_std) for lines, run in zip(sides, runs.T)], axis=1)
    return np.stack([runs[:, 0], h - runs[:, 1], runs[:, 2], w - runs[:, 3]], axis=1)


def _inside_ground(grey: np.ndarray, box: np.ndarray) -> np.ndarray:
    """`box` (inside one layer of borders of the thumbnail `grey`), narrowed to inside a second layer where the bars
    frame a plain ground: on every stripped side the bar's shade lies NEST_CONTRAST or more from the line inside it
    (or the side was stripped as a panel of the inside's own shade, `_panel`; one side at least has the contrast),
    what they frame varies (NEST_MIN_STD: not a near-blank frame, whose own flat edges are no ground), and the
    ground is drawn flat (NEST_FLAT_STD: a photograph's flat edge seen smaller inside bars would pass FLAT_STD). The
    copy without the bars then trims to the same content."""
    top, bottom, left, right = box.tolist()
    h, w = grey.shape
    inside = grey[top:bottom, left:right]
    if min(inside.shape) < NEST_MIN_SIDE or inside.std() < NEST_MIN_STD:
        return box
    edges = [  # per side: its outermost line, the line inside the first layer, the band the first layer stripped
        (grey[0], inside[0], grey[:top]),
        (grey[-1], inside[-1], grey[bottom:]),
        (grey[:, 0], inside[:, 0], grey[:, :left].T),
        (grey[:, -1], inside[:, -1], grey[:, right:].T),
    ]
    gaps = [(abs(float(bar.mean()) - float(line.mean())), band) for bar, line, band in edges if len(band)]
    if max(gap for gap, _ in gaps) < NEST_CONTRAST or not all(
        gap >= NEST_CONTRAST or (gap < BAR_TOLERANCE and panel(band)) for gap, band in gaps
    ):
        return box
    narrowed = _layer_boxes(inside[None], NEST_FLAT_STD) + (top, top, left, left)
    return box if _blank(narrowed, h, w)[0] else narrowed[0]


def panel(band: np.ndarray) -> bool:
    """Whether a stripped band (lines x pixels) holds marks, so the first layer took it as a caption panel, not a bar.
    A panel of the shade of the line inside it is ground already: a window's canvas with a line of text on it."""
    return bool((band.std(axis=1) >= FLAT_STD).any())


def caption_panels(thumbs: np.ndarray, trims: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Per thumbnail, whether its trim (`trims`, per image) stripped a caption panel at its head or its foot (a band
    with marks on it, `panel`) and nothing at its sides: a caption drawn over the picture, or added to it. Only
    `images` are looked at, the rest False."""
    out = np.zeros(len(thumbs), bool)
    images = np.unique(images)
    ends = images[(trims[images, 2] == 0) & (trims[images, 3] == thumbs.shape[2])]
    for k in ends[(trims[ends, 0] > 0) | (trims[ends, 1] < thumbs.shape[1])].tolist():
        top, bottom = trims[k, :2].tolist()
        out[k] = panel(thumbs[k][:top]) or panel(thumbs[k][bottom:])
    return out


def _blank(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Which (n, 4) boxes on an h x w thumbnail keep under a quarter of either side: the frame is then nearly
    blank, and nothing in it is content."""
    return (boxes[:, 1] - boxes[:, 0] < h // 4) | (boxes[:, 3] - boxes[:, 2] < w // 4)


def trim_box(thumb: np.ndarray) -> tuple[int, int, int, int]:
    """`trim_boxes` of one thumbnail."""
    return tuple(int(v) for v in trim_boxes(thumb[None])[0])
