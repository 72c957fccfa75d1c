"""Worker processes of the dedup stage (hashing.hash_files, decide.decide): forked where the platform can, so they
inherit the caller's arrays instead of having them pickled, with OpenCV's own threads turned off first.

OpenCV's pthreads pool does not survive fork(): a forked worker inherits the pool as it was, and where one of the
pool's threads held its lock at that moment, the worker waits forever in its first parallel call (opencv/opencv#5150;
seen here once in a quality run, a decide worker stuck in cv2.connectedComponentsWithStats while its parent waited).
The stage runs one process per core already, on 64x64 thumbnails, where OpenCV's threads gain nothing.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

import cv2


def fork_context() -> BaseContext | None:
    """multiprocessing's fork context, None where processes cannot fork; OpenCV runs single-threaded from here on, in
    this process and in every worker forked from it."""
    cv2.setNumThreads(0)
    return multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
