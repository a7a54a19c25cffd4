"""`tollway serve` / `tollway worker` keep their startup heap out of the cyclic GC's walks (runtime/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tollway.runtime.heap import YOUNG_COLLECTION_AFTER, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_what_is_alive_is_frozen_and_the_young_generation_collected_less_often() -> None:
    kept = [object() for _ in range(10)]  # a list: tracked by the collector
    assert any(o is kept for o in gc.get_objects())
    middle, oldest = gc.get_threshold()[1:]
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # in the permanent generation: no collection walks it
    assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, middle, oldest)
