"""The folder bigjax caches derived files in (tokenized data, compiled programs)."""

from __future__ import annotations

import os

CACHE_ENV = "BIGJAX_CACHE_DIR"


def cache_dir() -> str:
    """`$BIGJAX_CACHE_DIR`, else `~/.cache/bigjax`."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "bigjax")
