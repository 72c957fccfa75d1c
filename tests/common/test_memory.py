"""array_memory: numpy's huge-page advice off inside the block and as it was after, nested blocks included; glibc
keeps freed memory for reuse inside (a freed large array's pages come back without faults); the decorated dedup
entry points work inside it. collector_paused: the garbage collector off inside, as it was after; the dedup stage
runs inside it."""

from __future__ import annotations

import gc
import resource
import sys

import numpy as np
import pytest

from finetuner.common import memory
from finetuner.common.memory import array_memory, with_array_memory

switch = memory._hugepage_switch()


def advice() -> bool:
    """numpy's current huge-page advice (reading it means setting it: set it back)."""
    current = switch(True)
    switch(current)
    return current


@pytest.mark.skipif(switch is None, reason="this numpy has no huge-page switch")
def test_the_advice_is_off_inside_and_restored_after_nested_blocks():
    before = advice()
    with array_memory():
        assert advice() is False
        with array_memory():
            assert advice() is False
        assert advice() is False  # the inner block does not restore it
    assert advice() is before


@pytest.mark.skipif(switch is None, reason="this numpy has no huge-page switch")
def test_the_advice_is_restored_when_the_block_raises():
    before = advice()
    with pytest.raises(ValueError), array_memory():
        raise ValueError("boom")
    assert advice() is before


@pytest.mark.skipif(memory._glibc() is None, reason="not glibc")
def test_freed_large_arrays_are_reused_inside_the_block():
    """Four 8 MiB arrays freed and allocated again: glibc's own sliding thresholds trim the freed 32 MiB and fault
    every page in again (about 2,000 faults); inside the block the same memory comes back."""
    size = 8 << 20

    def faults_of_second_round() -> int:
        first = [np.ones(size, np.uint8) for _ in range(4)]
        del first
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        second = [np.ones(size, np.uint8) for _ in range(4)]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del second
        return faults

    with array_memory():
        inside = faults_of_second_round()
    assert inside < 4 * (size >> 12) // 10  # reused: far fewer faults than its 8,192 pages (or 2,048 in 4 KiB)


def test_a_decorated_function_keeps_its_name_result_and_errors():
    @with_array_memory
    def twice(x: int) -> int:
        """Doubles."""
        if x < 0:
            raise ValueError(f"negative {x}")
        return 2 * x

    assert twice(21) == 42 and twice.__name__ == "twice" and twice.__doc__ == "Doubles."
    with pytest.raises(ValueError, match="negative -1"):
        twice(-1)
    assert memory._depth == 0


def test_nothing_is_set_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory._glibc() is None


@pytest.mark.skipif(switch is None, reason="this numpy has no huge-page switch")
def test_blocks_overlapping_in_threads_restore_the_advice_when_the_last_one_leaves():
    import threading

    before = advice()
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with array_memory():
            inside.set()
            leave.wait(5)

    worker = threading.Thread(target=other)
    with array_memory():
        worker.start()
        inside.wait(5)
    assert advice() is False  # this thread's block ended, the other's has not
    leave.set()
    worker.join(5)
    assert advice() is before and memory._depth == 0


def test_the_collector_is_off_inside_and_as_it_was_after_nested_blocks():
    assert gc.isenabled()
    with memory.collector_paused():
        assert not gc.isenabled()
        with memory.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block does not turn it back on
    assert gc.isenabled()


def test_the_collector_stays_off_after_the_block_when_it_was_off_before_and_on_after_an_error():
    gc.disable()
    try:
        with memory.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ValueError), memory.collector_paused():
        raise ValueError("boom")
    assert gc.isenabled() and memory._paused == 0


def test_the_dedup_stage_runs_with_the_collector_paused(monkeypatch, tmp_path):
    from finetuner.config import parse_params
    from finetuner.dedup import stage, usable

    seen = []

    def hash_contents(*args, **kwargs):
        seen.append(gc.isenabled())
        raise RuntimeError("stop here")

    monkeypatch.setattr(usable, "read_csv", lambda *args, **kwargs: [])
    monkeypatch.setattr(stage, "hash_contents", hash_contents)
    with pytest.raises(RuntimeError, match="stop here"):
        stage.run(parse_params({}), tmp_path)
    assert seen == [False] and gc.isenabled()
