"""What every stage shares: params loading, atomic writes and CSV I/O, the workspace and file locks, checksums,
the content-addressed cache, the device choice, dvc.lock reading, image decoding and seeds."""

from finetuner import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ContentCache": "content_cache",
        "resolve_device": "device",
        "locked_dep_hash": "dvc_lock",
        "load_rgb": "imageio",
        "to_rgb": "imageio",
        "CorruptFile": "integrity",
        "derived_seed": "seeding",
        "InputError": "stage",
        "atomic_path": "stage",
        "load_params": "stage",
        "read_csv": "stage",
        "read_frame": "stage",
        "run_stage": "stage",
        "write_csv": "stage",
        "write_json": "stage",
        "write_text": "stage",
        "WorkspaceBusy": "workspace_lock",
        "file_lock": "workspace_lock",
        "workspace_lock": "workspace_lock",
    },
)
