"""Metering's part of the composition root: the usage sink the gateway records into (inline pipeline or hand-over
to a worker) with its metrics, the store's counters, and the rollup worker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from tollway.adapters.journal.file import FileJournal
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import Clock
from tollway.gateway.metrics import GatewayMetrics
from tollway.metering.journaling import JournalWriter
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.retention import Retention
from tollway.metering.sink import UsageSink
from tollway.metering.spool import HandOffSink
from tollway.metering.worker import RollupWorker
from tollway.settings import Settings


def usage_sink(
    settings: Settings, store: SqlEventStore, journal: FileJournal, metrics: GatewayMetrics
) -> tuple[UsageSink, Callable[[], float]]:
    """Where the gateway records usage (TOLLWAY_INGEST: handed over to a worker, or stored inline), with its
    metrics; and the age of the oldest usage not yet stored (the backlog watch)."""
    pipeline: UsageSink
    writer: JournalWriter
    if settings.ingest == "external":
        handing = HandOffSink(journal, interval_s=settings.flush_interval_s)
        pipeline, writer, backlog_age = handing, handing.writer, handing.backlog_age_s
    else:
        inline = UsagePipeline(
            store,
            journal,
            batch_size=settings.flush_batch_size,
            interval_s=settings.flush_interval_s,
            max_memory_events=settings.inline_max_backlog_events,
        )
        metrics.add_gauge(
            "tollway_usage_spills",
            "Times the unstored usage outgrew TOLLWAY_INLINE_MAX_BACKLOG_EVENTS and was kept in the journal only.",
            lambda: inline.spills_total,
            mode="livesum",
        )
        metrics.add_gauge(
            "tollway_usage_flush_in_progress",
            "1 while a flush is storing usage (or waiting on the database); stuck at 1: the database hangs.",
            lambda: int(inline.flushing),
            mode="livesum",
        )
        metrics.add_counter(
            "tollway_usage_flush_failures_total",
            "Failed attempts to store usage events since start.",
            lambda: inline.flush_failures_total,
        )
        metrics.add_counter(
            "tollway_internal_errors_total",
            "Failures of usage storing that were not an outage (a bug; see the log): the batch is kept.",
            lambda: inline.internal_errors_total,
        )
        metrics.add_counter(
            "tollway_usage_interrupted_calls_total",
            "Calls a previous process did not see finish (killed while they ran), metered from their intents.",
            lambda: inline.interrupted_total,
        )
        pipeline, writer, backlog_age = inline, inline.writer, inline.backlog_age_s
    metrics.add_gauge(
        "tollway_usage_journal_writable",
        "1 while usage can be journaled; 0 after an append failed (a full disk): calls are refused (503).",
        lambda: int(writer.error is None),
        mode="livemin",
    )
    metrics.add_counter(
        "tollway_usage_journal_failures_total",
        "Appends to the usage journal that failed since start.",
        lambda: writer.failures_total,
    )
    metrics.add_gauge(
        "tollway_usage_backlog_age_seconds",
        "Seconds the oldest usage this process took has waited to be stored (0: none waits). Inline: not yet"
        " stored by this gateway; external: handed over and not yet stored by a worker.",
        backlog_age,
        mode="livemax",
    )
    metrics.add_gauge(
        "tollway_usage_backlog_events",
        "Usage events not yet stored (inline) or not yet handed to the worker (external).",
        lambda: pipeline.backlog,
        mode="livesum",
    )
    return pipeline, backlog_age


def store_metrics(store: SqlEventStore, metrics: GatewayMetrics) -> None:
    """The event store's counters on /metrics."""
    stats = store.stats
    for name, help_text, read in (
        ("tollway_events_stored_total", "Events stored since start (new ones).", lambda: stats.inserted_total),
        (
            "tollway_events_duplicates_total",
            "Events skipped as duplicates of a stored (source, id).",
            lambda: stats.duplicates_total,
        ),
        (
            "tollway_events_conflicts_total",
            "Events whose (source, id) was stored with different content (first copy kept).",
            lambda: stats.conflicts_total,
        ),
        (
            "tollway_meter_skipped_values_total",
            "Events a meter skipped: value missing, or not a number where one is needed.",
            lambda: stats.skipped_values_total,
        ),
    ):
        metrics.add_counter(name, help_text, read)


def rollup_worker(store: SqlEventStore, clock: Clock, retention: timedelta | None) -> RollupWorker:
    """The rollup worker; with a retention it also deletes the raw events past it (metering/retention.py)."""
    return RollupWorker(store, retention=Retention(store, clock, retention) if retention is not None else None)
