"""Glyph look-alikes vs clones: which cross-family candidate pairs the verifier accepts, with default params.

Letters of two typefaces are not copies; clones of one design under two names (Liberation Sans / Arimo, Nimbus Roman
/ TeX Gyre Termes, the URW base35 fonts and their TeX Gyre versions) are. Counts accepted / rejected candidates per
kind, the share of clone pairs (same letter and style) accepted, and the largest unit the accepted pairs and family
groups would make before dedup.max_unit_share cuts it: as the verifier accepts them, and as the stage's design guard
(dedup.min_design_share: look-alike graphics between families that share too little) keeps them. Run:
`python benchmarks/bench_dedup_glyphs.py` (reads ../shared/data/glyphs/target; about 80 s on 2 cores).
"""

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from finetuner.config import parse_params  # noqa: E402
from finetuner.dedup.candidates import TWIN_PRONE  # noqa: E402
from finetuner.dedup.detect import verified_files  # noqa: E402
from finetuner.dedup.guards import guard_designs  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--glyphs", type=Path, default=ROOT.parent / "shared/data/glyphs/target")
root = parser.parse_args().glyphs
if not (root / "metadata.csv").exists():
    sys.exit(f"no {root / 'metadata.csv'}: pass --glyphs pointing at glyphs/target")
with (root / "metadata.csv").open() as handle:
    rows = list(csv.DictReader(handle))
paths = [root / "images" / r["path"] for r in rows]
letter = [r["path"].split("/")[0] for r in rows]
fam = [r["group"] for r in rows]
style = [Path(r["path"]).stem for r in rows]
CLONES = [
    ("Liberation-Sans", "Arimo"),
    ("Liberation-Serif", "Tinos"),
    ("Liberation-Mono", "Cousine"),
    ("Nimbus-Sans", "TeX-Gyre-Heros"),
    ("Nimbus-Roman", "TeX-Gyre-Termes"),
    ("Nimbus-Mono-PS", "TeX-Gyre-Cursor"),
    ("C059", "TeX-Gyre-Schola"),
    ("P052", "TeX-Gyre-Pagella"),
    ("URW-Bookman", "TeX-Gyre-Bonum"),
    ("URW-Gothic", "TeX-Gyre-Adventor"),
    ("Z003", "TeX-Gyre-Chorus"),
    ("Nimbus-Sans-Narrow", "TeX-Gyre-Heros-Cn"),
    ("Mplus-Code-50", "M-PLUS-Code-Latin-50"),
    ("Mplus-Code-60", "M-PLUS-Code-Latin-60"),
]
README_SETS = [
    {"Liberation-Sans", "Arimo", "Nimbus-Sans", "TeX-Gyre-Heros", "FreeSans"},
    {"Liberation-Serif", "Tinos", "Nimbus-Roman", "TeX-Gyre-Termes"},
]
# Families sharing one design's Latin outlines by a documented derivation, or variants of one family under two
# names: 828 of the 2,831 accepted "look-alike" pairs were theirs. GNU FreeFont's FreeMono / FreeSerif are URW's
# Nimbus Mono and Nimbus Roman; Hack is derived from DejaVu Sans Mono; Noto Sans' Latin from Open Sans; Carlito from
# Lato; M+ 1 and M+ 2, and the M+ code fonts, are one foundry's variants; STIX and STIXGeneral are two releases of
# one design, and "the original version of STIX was based on Times Roman" (CTAN, fonts/stix2-otf): 272 of the pairs
# left as look-alikes after the design guard paired it with the URW / TeX Gyre Times at 0.83-0.90 of their letters.
LINEAGE = [
    {"M-PLUS-1", "M-PLUS-2"},
    {"M-PLUS-1-Code", "M-PLUS-Code-Latin-50", "Mplus-Code-50", "M-PLUS-Code-Latin-60", "Mplus-Code-60"},
    {"FreeMono", "Nimbus-Mono-PS", "TeX-Gyre-Cursor"},
    {"FreeSerif", "Nimbus-Roman", "TeX-Gyre-Termes", "STIX", "STIXGeneral"},
    {"DejaVu-Sans-Mono", "Hack"},
    {"Open-Sans", "Noto-Sans", "Noto-Sans-Display", "Noto-Sans-Symbols", "Noto-Sans-Math"},
    {"Carlito", "Lato"},
    {"Accanthis-ADF-Std", "Accanthis-ADF-Std-No2", "Accanthis-ADF-Std-No3"},
    {"Gillius-ADF", "Gillius-ADF-No2"},
    {"Go", "Go-Smallcaps"},
    {"Gentium", "GentiumAlt"},
]
clone = {frozenset(p) for p in CLONES}
STIX, TIMES = {"STIX", "STIXGeneral"}, {"FreeSerif", "Nimbus-Roman", "TeX-Gyre-Termes"}


def kind(x, y):
    if letter[x] != letter[y]:
        return "different letter"
    if fam[x] == fam[y]:
        return "same family"
    f = frozenset((fam[x], fam[y]))
    if f in clone:
        return "clone families"
    if any(f <= s for s in README_SETS):
        return "metric look-alike set (README)"
    if all(g.startswith(("CMU", "Latin-Modern")) for g in f):
        return "Computer Modern (CMU / Latin Modern)"
    if any(f <= s for s in LINEAGE):
        return "derived design (documented lineage)"
    return "look-alike, other family"


config = parse_params({}).dedup
c = time.process_time()
found = verified_files([Path(p) for p in paths], config, workers=2, aspect=np.ones(len(paths)), hash_workers=2)
print(f"{len(paths)} images, {len(found.a)} candidates, cpu {time.process_time() - c:.1f} s (main process)")
acc = found.verdicts.accepted
# the stage's design guard (finetuner/dedup/guards.py), with the families as declared groups
ka, kb = found.a[acc], found.b[acc]
twin = np.zeros(len(acc), dtype=bool)
twin[np.flatnonzero(acc)] = guard_designs(
    fam,
    ka,
    kb,
    np.isin(found.verdicts.rule[acc], TWIN_PRONE),  # as the stage passes them
    *found.look_alikes(config.verify.min_shape_similarity),
    config.min_design_share,
    config.max_design_chance,
)
table = {}
for x, y, ok, cut in zip(found.a.tolist(), found.b.tolist(), acc.tolist(), twin.tolist()):
    t = table.setdefault(kind(x, y), [0, 0, 0])
    t[1 if not ok else 2 if cut else 0] += 1
print(
    f"{'candidate kind':40s} kept rejected cut by the design guard (min_design_share {config.min_design_share}, "
    f"max_design_chance {config.max_design_chance})"
)
for k, (a, r, t) in sorted(table.items()):
    print(f"{k:40s} {a:8d} {r:8d} {t:8d}")
by = {}
for k in range(len(rows)):
    by.setdefault((letter[k], style[k]), []).append(k)
proposed = set(zip(found.a.tolist(), found.b.tolist()))
copies = ("clone families", "metric look-alike set (README)", "Computer Modern (CMU / Latin Modern)")
n = len(rows)
gid = {g: n + k for k, g in enumerate(sorted(set(fam)))}
for name, keep in (("accepted by the verifier", acc), ("kept by the design guard", acc & ~twin)):
    print(f"-- {name}")
    # clone recall: same letter, same style, clone families
    pairs = {(int(a), int(b)) for a, b in zip(found.a[keep], found.b[keep])}
    hit = tot = met = 0
    for ks in by.values():
        for x, y in itertools.combinations(ks, 2):
            if frozenset((fam[x], fam[y])) in clone:
                tot += 1
                hit += (min(x, y), max(x, y)) in pairs
                met += (min(x, y), max(x, y)) in proposed
    print(f"clone families, same letter and style: {met}/{tot} candidates, {hit}/{tot} kept ({hit / max(tot, 1):.2f})")
    across = {
        k: v[0] + (v[2] if keep is acc else 0) for k, v in table.items() if k not in ("same family", "different letter")
    }
    known = sum(across.get(k, 0) for k in copies)
    derived = across.get("derived design (documented lineage)", 0)
    # the labels before STIX joined the Times lineage: its pairs with a Times counted as look-alikes
    stix = sum(
        1
        for x, y in zip(found.a[keep].tolist(), found.b[keep].tolist())
        if {fam[x], fam[y]} & STIX and {fam[x], fam[y]} & TIMES and letter[x] == letter[y]
    )
    total = max(sum(across.values()), 1)
    print(
        f"pairs across families: {sum(across.values())}, of which known clone designs "
        f"({', '.join(copies)}): {known}, derived designs: {derived}; share of one design: "
        f"{(known + derived) / total:.3f} ({(known + derived - stix) / total:.3f} counting STIX with a Times, "
        f"{stix} pairs, as look-alikes)"
    )
    # largest unit per letter: the pairs joined through family groups, as the split would see them
    i = np.r_[found.a[keep], np.arange(n)]
    j = np.r_[found.b[keep], [gid[f] for f in fam]]
    lab = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n + len(gid),) * 2), directed=False)
    share = max(
        np.bincount(lab[1][:n][[k for k in range(n) if letter[k] == L]]).max()
        / sum(1 for k in range(n) if letter[k] == L)
        for L in set(letter)
    )
    print(
        f"largest unit (these pairs + family groups) as a share of its letter, before the unit share guard: {share:.2f}"
    )
