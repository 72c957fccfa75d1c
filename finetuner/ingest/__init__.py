"""Ingest: every file under data/raw/images checked, hashed, labelled and grouped into one manifest row
(`manifest`), with the optional metadata.csv's groups and labels (`metadata`). Run by tasks/ingest.py."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "build_manifest": "manifest",
        "inspect_files": "manifest",
        "list_files": "manifest",
        "summarize": "manifest",
        "Metadata": "metadata",
        "MetadataError": "metadata",
        "parse_metadata": "metadata",
    },
)
