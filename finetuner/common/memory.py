"""Memory for bulk work (dedup's hashing and verifier): large numpy arrays in small pages, reused; the collector
paused.

Two defaults make fresh memory slow on a VM, and the verifier allocates and frees large temporaries by the thousand:
- numpy advises the kernel to back every allocation of 4 MiB or more with transparent huge pages (madvise
  MADV_HUGEPAGE). Where the kernel has no free 2 MiB pages at hand (memory fragmented, e.g. by a large page cache)
  and its THP defrag setting is "madvise" (the usual default), the first touch of such an array stalls in direct
  compaction, then falls back to small pages anyway. On the 2-core CI VM a fresh copy of 20,000 64x64 thumbnails
  (78 MiB) took 0.35 s instead of 0.03 s, a first 16x16 look at 88,000 candidate pairs 1.9 s instead of 0.6 s.
- glibc's malloc hands arrays above its mmap threshold (128 KiB at first, raised as large blocks are freed, 32 MiB
  at most) straight to the kernel and returns them on free, and trims freed heap beyond twice that: the next
  array of the same size is fresh memory again, a page fault per 4 KiB. Deciding 88,000 candidates touched 1.1 GiB
  of fresh pages that way (0.35 s of 3.3 s in one process).

`array_memory()` turns numpy's advice off for a block of work and has glibc keep freed memory for reuse (arrays up
to 32 MiB from the heap, freed heap kept); at the end of the outermost block the advice is restored, the free memory
given back (malloc_trim), and glibc left trimming as its sliding thresholds would after freeing a 32 MiB block.
Processes forked inside inherit both. Elsewhere than Linux with glibc, only the
numpy part applies, where numpy has the switch.

`collector_paused()` keeps Python's cyclic garbage collector off for a block: a run that builds many small objects
(manifest rows, pair records) and imports numba's hundreds of modules passes the collector's thresholds often enough
for two full collections, each a scan of every object the process holds (0.06-0.10 s each in a dedup run on 21,000
images, on its critical path). Reference counting still frees what the block drops; reference cycles wait for the
next collection after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np

_Call = TypeVar("_Call", bound=Callable)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 << 20  # bytes: glibc's own ceiling for its sliding threshold; larger blocks still map directly
TRIM_THRESHOLD = 1 << 30  # bytes of free heap kept (not trimmed) while a block runs
TRIM_AFTER = 2 * MMAP_THRESHOLD  # ...and after: where glibc's sliding trim threshold stands beside that mmap one
_depth = 0  # blocks inside now, in any thread
_advised: bool | None = None  # numpy's advice before the first of them
_lock = threading.Lock()
_paused = 0  # collector_paused blocks inside now, in any thread
_collecting: bool = True  # whether the collector was on before the first of them


def _hugepage_switch() -> Callable[[bool], bool] | None:
    """numpy's setter of the huge-page advice (it returns the previous setting), if this numpy has one."""
    core = getattr(np, "_core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


def _glibc():
    """The C library, where it is glibc (it has mallopt and malloc_trim); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def array_memory() -> Iterator[None]:
    """numpy's large allocations in small pages, and freed memory reused, inside the block. The settings are the
    process's: blocks nested or overlapping in threads count as one, set by the first to enter and restored by the
    last to leave."""
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    global _depth, _advised
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        switch, libc = _hugepage_switch(), _glibc()
        _advised = switch(False) if switch is not None else None
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def _leave() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth > 0:
            return
        switch, libc = _hugepage_switch(), _glibc()
        if switch is not None and _advised is not None:
            switch(_advised)
        if libc is not None:
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_AFTER)
            libc.malloc_trim(0)


def with_array_memory(function: _Call) -> _Call:
    """`function` run inside `array_memory()`, a fresh block per call."""
    return array_memory()(function)  # a contextmanager's block decorates, recreated for each call


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block, and as it was after. Blocks nested or overlapping in
    threads count as one: the first to enter turns it off, the last to leave restores it. Processes forked inside
    inherit the pause."""
    global _paused, _collecting
    with _lock:
        _paused += 1
        if _paused == 1:
            _collecting = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _collecting:
                gc.enable()


def with_collector_paused(function: _Call) -> _Call:
    """`function` run inside `collector_paused()`, a fresh block per call."""
    return collector_paused()(function)
