"""Split: leakage units assigned to train/val/test, class-stratified and sticky (`assign`, `sticky`, `graph`,
`fractions`), the registry that keeps earlier assignments (`registry`) and the leak check and report (`report`).
Run by tasks/split.py."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "SPLITS": "assign",
        "SplitError": "assign",
        "assign_splits": "assign",
        "fraction_problem": "fractions",
        "read_registry": "registry",
        "write_registry": "registry",
    },
)
