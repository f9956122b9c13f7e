"""The collector paused while a run starts (``archiver.collector``): on again when the pause
ends, however it ends, and left alone by a pause inside another or a caller that keeps it
off."""

from __future__ import annotations

import gc

import pytest

from archiver import collector


def test_a_pause_ends_with_its_block_or_sooner() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # inside another: the outer one ends it
            assert not gc.isenabled()
        assert not gc.isenabled()
        collector.resume()
        assert gc.isenabled()
        collector.resume()  # nothing left to end
        assert gc.isenabled()
    assert gc.isenabled()


def test_a_pause_ended_by_an_exception_turns_the_collector_on() -> None:
    with pytest.raises(KeyError), collector.paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            collector.resume()
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
