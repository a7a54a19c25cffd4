"""A circuit breaker per upstream target: closed -> open -> half-open (one probe) -> closed.

Time is in seconds on the injected clock (the caller passes `now`), so tests drive it with a frozen clock.
Every state change is logged once, never per request.

With shared routing state (gateway/balancing/fleet.py) the consecutive failures are the fleet's: this process's
failures not yet told to the others are `unsent`; `tally` takes the fleet's count back; `fresh` says the count
restarted here (a success, or a change of state) since it was last told, and `epoch` numbers the restarts, so an
answer that crossed one is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tollway.gateway.balancing.settings import BreakerSettings

log = logging.getLogger("tollway.gateway.breaker")

CLOSED, HALF_OPEN, OPEN = 0, 1, 2  # also the values of the tollway_target_breaker_state gauge
STATE_NAMES = ("closed", "half_open", "open")
BUCKETS = 10  # the failure-rate window is kept as this many buckets of window_s / BUCKETS each


class Breaker:
    __slots__ = (
        "_bucket_s",
        "_buckets",
        "_cooldown_s",
        "_failure_rate",
        "_failures",
        "_min_requests",
        "_probe_since",
        "consecutive",
        "epoch",
        "fresh",
        "listener",
        "name",
        "opened_at",
        "state",
        "unsent",
    )

    def __init__(self, settings: BreakerSettings, name: str) -> None:
        self.name = name  # "provider/model", for the log
        self._failures = settings.failures
        self._failure_rate = settings.failure_rate
        self._min_requests = settings.min_requests
        self._cooldown_s = settings.cooldown_s
        self._bucket_s = settings.window_s / BUCKETS
        # per bucket: [bucket number, tries, failures]
        self._buckets: list[list[float]] = [[-1.0, 0.0, 0.0] for _ in range(BUCKETS)]
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self._probe_since: float | None = None  # half-open: when the one probe was handed out
        self.listener: Callable[[Breaker], None] | None = None  # told of every state change made here
        self.unsent = 0  # failures counted here (closed) that the other processes have not been told of
        self.fresh = False  # the count restarted here since it was last told
        self.epoch = 0

    # asked when choosing targets ------------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        """Whether the target may be tried now without claiming anything (closed, or open past its cool-down
        with no probe out)."""
        if self.state == CLOSED:
            return True
        return self._probe_free(now)

    def wants_probe(self, now: float) -> bool:
        return self.state != CLOSED and self._probe_free(now)

    def claim_probe(self, now: float) -> None:
        """The one half-open probe is handed out (the target goes first in this request's order)."""
        if self.state == OPEN:
            self._move(HALF_OPEN, "half-open: one probe request after the cool-down")
        self._probe_since = now

    def reopens_at(self) -> float:
        """When an open breaker lets a probe through."""
        return self.opened_at + self._cooldown_s

    def _probe_free(self, now: float) -> bool:
        if now < self.opened_at + self._cooldown_s:
            return False
        # a probe handed out but never reported (its request skipped the target) is taken back after a cool-down
        return self._probe_since is None or now - self._probe_since >= self._cooldown_s

    # fed by finished tries and health checks --------------------------------------------------------------

    def success(self, now: float) -> None:
        self.consecutive = 0
        self._restart()
        self._count(now, failed=False)
        if self.state != CLOSED:
            self._probe_since = None
            self._move(CLOSED, "closed: the probe succeeded")

    def failure(self, now: float) -> None:
        self.consecutive += 1
        tries, failures = self._count(now, failed=True)
        if self.state == CLOSED:
            self.unsent += 1
        else:
            self._probe_since = None
            self.opened_at = now
            self._move(OPEN, "open again: the probe failed")
            return
        if self.consecutive >= self._failures:
            self._open(now, f"open after {self.consecutive} consecutive failures")
        elif self._failure_rate is not None and tries >= self._min_requests and failures / tries >= self._failure_rate:
            self._open(now, f"open: {int(failures)} of the last {int(tries)} tries failed")

    def released(self) -> None:
        """The probe's try ended neither way (the target was skipped): another request may probe."""
        self._probe_since = None

    def _open(self, now: float, why: str) -> None:
        self.opened_at = now
        self._move(OPEN, why)

    def tally(self, epoch: int, sent: int, fleet: int, now: float) -> None:
        """The fleet's consecutive failures (`fleet`), counted after this process told the others `sent` of its
        own at `epoch`: taken as this breaker's count (with the failures since), unless the count restarted here
        meanwhile; reaching `failures` opens the breaker as a failure here would."""
        if epoch != self.epoch or self.state != CLOSED:
            return
        self.unsent -= sent
        self.fresh = False
        self.consecutive = fleet + self.unsent
        if self.consecutive >= self._failures:
            self._open(now, f"open after {self.consecutive} consecutive failures across the gateways")

    def _restart(self) -> None:
        """The consecutive count starts again (a success, a change of state): the others are told so."""
        self.unsent = 0
        self.fresh = True
        self.epoch += 1

    def _move(self, state: int, why: str) -> None:
        if state != self.state:
            self._restart()
            self.state = state
            log.warning("breaker %s %s", self.name, why)
            if self.listener is not None:
                self.listener(self)

    def adopt(self, state: int, opened_at: float, now: float) -> None:
        """Take a state another process reached (shared routing state): open there is open here, from the
        same time; half-open there means its probe is out, so none is handed out here for a cool-down."""
        self._restart()
        if state == CLOSED:
            if self.state != CLOSED:
                log.warning("breaker %s closed: another gateway's probe succeeded", self.name)
            self.state, self.consecutive, self._probe_since = CLOSED, 0, None
            return
        if self.state == CLOSED:
            log.warning("breaker %s open: opened by another gateway", self.name)
        self.state = OPEN if state == OPEN else HALF_OPEN
        self.opened_at = max(self.opened_at, opened_at)
        self._probe_since = now if state == HALF_OPEN else None

    def _count(self, now: float, *, failed: bool) -> tuple[float, float]:
        """Count one try in the window; return (tries, failures) over the window."""
        number = now // self._bucket_s
        bucket = self._buckets[int(number) % BUCKETS]
        if bucket[0] != number:
            bucket[0], bucket[1], bucket[2] = number, 0.0, 0.0
        bucket[1] += 1
        if failed:
            bucket[2] += 1
        if self._failure_rate is None:
            return 0.0, 0.0
        oldest = number - BUCKETS + 1
        tries = failures = 0.0
        for start, count, failed_count in self._buckets:
            if start >= oldest:
                tries += count
                failures += failed_count
        return tries, failures
