"""Dedup: perceptual hashes of several views (`hashing`, `views`), exact radius search over them (`neighbours`,
`view_search`), candidates and their decision (`candidates`; `decide`: a 16x16 look, then the verifier, in worker
processes), the verifier (`verify`; `searches`: the alignments beyond the frames as they are; `verdicts`: thresholds
and verdicts), optional embeddings (`embedding`, `similarity`), pairs to leakage units with guards (`units`), the caches
per content and per pair (`hash_cache`, `pair_cache`) and the report (`report`). Run by tasks/dedup.py."""

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
