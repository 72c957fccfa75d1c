"""Command-line entry points installed as console scripts (see `[project.scripts]` in pyproject.toml)."""
