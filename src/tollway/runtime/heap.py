"""A serving process's heap once it is built: kept out of the cyclic garbage collector's walks."""

from __future__ import annotations

import gc

YOUNG_COLLECTION_AFTER = 10_000  # net allocations of tracked objects between collections of the youngest generation


def settle_heap() -> None:
    """Move everything alive now (modules, the config, the built app: ~225k objects) out of the cyclic
    garbage collector's reach: with it in the oldest generation, every full collection walked it all
    again (tens of ms each on the request thread, a request's p99 at c=1) and full collections kept
    coming as requests' survivors piled up. Reference counting still frees what of it becomes garbage;
    only cycles among these startup objects would stay (once: e.g. the first config's, after a reload).
    Then the youngest generation is collected every `YOUNG_COLLECTION_AFTER` net allocations instead of
    700: each collection walks the objects of the requests in flight, whatever the threshold, so fewer of
    them cost less (~6 µs per request at c=64), for at most that many objects of cyclic garbage waiting.
    Figures: docs/benchmarks.md."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, middle, oldest)
