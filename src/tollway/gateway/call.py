"""One request in flight, as the gateway's edge and the flow see it (who, which route, which model).

Written by the edge (app.py: route, consumer, key), the flow (flow.py: the model; the provider, usage and
attempts at its one record point) and the plain endpoints that label their metrics; read by the access
log, the metrics and the observer (observe.py). How the tries and the relaying went lives in their own
results (failover.Answer / Failed, relay.Outcome), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.identity.key_index import Identity
from tollway.metering.llm import AttemptRecord, TokenUsage


@dataclass(slots=True)
class Call:
    """One request in flight."""

    request_id: str
    route: str
    started: float
    consumer: Identity | None = None
    model: str = "-"  # the model entry's name (metric labels); the client may have asked by another name
    requested_model: str = "-"  # the name the client asked for
    provider: str = "-"  # the provider that served it, once recorded
    usage: TokenUsage | None = None  # once recorded (the access log, the observer)
    attempts: tuple[AttemptRecord, ...] = ()  # once recorded: failed tries of other targets before the one that served
    key: bytes | None = None  # the key the consumer presented: scrubbed from whatever the call relays
    status: int | None = None  # once over: the status it is counted with (499: the client went away)

    @property
    def id_bytes(self) -> bytes:
        return self.request_id.encode()
