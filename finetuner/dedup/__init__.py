"""Dedup: perceptual hashes of several views (`hashing`, `views`), exact radius search (`neighbours`), the verifier
(`verify`, its searches beyond the frames as they are `searches`, its thresholds and verdicts `verdicts`, and
`candidates`), optional embeddings (`embedding`, `similarity`), pairs to leakage units with guards
(`units`), the per-content cache (`hash_cache`) and the report (`report`). Run by tasks/dedup.py."""

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
        "HashCache": "hash_cache",
        "summarize": "report",
        "render_html": "report",
    },
)
