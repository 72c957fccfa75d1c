"""Dedup: near-duplicate pairs and leakage units, in the order a run goes (the stage: `stage`, entry tasks/dedup.py;
its input, the manifest's usable rows: `usable`).

1. Hash each distinct content once: decoded at reduced size (`decoding`), perceptual hashes of several views
   (`hashing`, `views`; the content inside bars and panels: `trims`; Pillow's resize batched, `resample`), cached per
   content with the thumbnails (`hash_cache`); `detect` runs steps 1-3 for the stage.
2. Candidates: an exact radius search over every view's hashes (`view_search`, `neighbours` on `multi_index`, its
   compiled loop `probing`; each candidate's signal, the view pair that found it: `signals`), near-blank images by
   their colour layout (`blank_candidates`); capped per image by a 16x16 look (`look_cap`, `prescreen`); all in
   `candidates`, cached per pair (`pair_cache`).
3. Decide each candidate (`decide`, in worker processes forked as hashing's are: `forking`): the look, then the
   verifier (`verify`), which aligns the two thumbnails (`align`, its affine refit `refit`, `correlation`; the
   searches beyond the frames as they are: `searches`, and for copies edited in their pixels `retouched`) and judges
   by its thresholds (`verdicts`), with its own rules where images mislead it: near-blank frames (`low_detail`), and
   second looks at accepted pairs (`second_looks`) at graphics (`shape`; large pages of text looked at again at full
   size: `full_size`, its keypoint matching `descriptors`) and photographs framed alike (`surround`; an image's
   frame: `frames`; a template's layers: `layers`); last, colours (`colour_checks`, on `colour`'s fit).
4. Optional embeddings as a second signal (`embedding`, `similarity`).
5. Guards against twin designs and chaining (`guards`); pairs and declared groups to leakage units, giant units
   explained (`units`); the report (`report`, its page `report_page`; its audit of the verifier's cut-off: `audit`).
"""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "hash_files": "hashing",
        "VIEWS": "views",
        "radius_pairs": "neighbours",
        "verified_pairs": "candidates",
        "embedding_signal": "embedding",
        "similar_pairs": "similarity",
        "PairRule": "units",
        "find_pairs": "units",
        "assign_units": "units",
        "guard_designs": "guards",
        "guard_clusters": "guards",
        "guard_units": "guards",
        "HashCache": "hash_cache",
        "summarize": "report",
        "render_html": "report_page",
    },
)
