"""The SQL of OpenMeter's event listing (EventStore.list_events): stored events of any type, newest first."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Select, and_, select, true

from tollway.adapters.sql.schema import events
from tollway.metering.events import Event, from_micros, to_micros
from tollway.metering.ports import EventFilter, ListedEvent


def listing_query(where: EventFilter) -> Select[Any]:
    conditions: list[Any] = []
    if where.start is not None:
        conditions.append(events.c.time_us >= to_micros(where.start))
    if where.end is not None:
        conditions.append(events.c.time_us < to_micros(where.end))
    if where.ingested_from is not None:
        conditions.append(events.c.stored_us >= to_micros(where.ingested_from))
    if where.ingested_to is not None:
        conditions.append(events.c.stored_us <= to_micros(where.ingested_to))
    if where.event_id is not None:
        conditions.append(events.c.id == where.event_id)
    if where.subjects is not None:
        conditions.append(events.c.subject.in_(list(where.subjects)))
    columns = (events.c.id, events.c.source, events.c.type, events.c.subject, events.c.time_us, events.c.stored_us)
    return (
        select(*columns, events.c.data)
        .where(and_(true(), *conditions))
        .order_by(events.c.time_us.desc(), events.c.seq.desc())
        .limit(where.limit)
    )


def listed_event(row: Any) -> ListedEvent:
    event = Event(
        id=row.id,
        source=row.source,
        type=row.type,
        subject=row.subject,
        time=from_micros(row.time_us),
        data=orjson.loads(row.data),
    )
    return ListedEvent(event, from_micros(row.stored_us))
