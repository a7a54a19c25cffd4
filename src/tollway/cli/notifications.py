"""`tollway notifications ...`: webhook channels, rules and events over TOLLWAY_DATABASE_URL."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tollway.cli.commands import Commands
from tollway.cli.services import run_services
from tollway.notifications.model import Event, EventFilter

notifications_app = Commands(help="Notifications: webhook channels, rules, and the events sent (or not) to them.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print what the API returns.")]


def _when(event: Event) -> str:
    return event.created_at.strftime("%Y-%m-%d %H:%M:%S")


@notifications_app.command("events")
def list_events(
    failed: Annotated[bool, typer.Option("--failed", help="Only events a channel did not get (FAILED).")] = False,
    pending: Annotated[bool, typer.Option("--pending", help="Only events still being delivered.")] = False,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule's events (id).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List notification events, newest first, with each channel's delivery state.

    Example: tollway notifications events --failed
    """
    states: tuple[str, ...] = ()
    if failed:
        states += ("FAILED",)
    if pending:
        states += ("PENDING", "SENDING", "RESENDING")
    query = EventFilter(rule_ids=(rule,) if rule else (), states=states, limit=limit)  # type: ignore[arg-type]
    found = run_services(lambda services: services.notifications.events(query))
    if as_json:
        from tollway.api.notification_codec import encode_event

        typer.echo(orjson.dumps([encode_event(e, None, {}) for e in found], option=orjson.OPT_INDENT_2).decode())
        return
    title = f"{len(found)} {'failed ' if failed else ''}notification events"
    table = Table(title=title)
    for column in ("id", "created", "type", "channel", "state", "attempts", "reason"):
        table.add_column(column)
    for event in found:
        for delivery in event.deliveries or ():
            table.add_row(
                event.id,
                _when(event),
                event.type,
                delivery.channel_id,
                delivery.state,
                str(delivery.attempts),
                delivery.reason,
            )
        if not event.deliveries:
            table.add_row(event.id, _when(event), event.type, "", "no channel", "0", "")
    Console().print(table)


@notifications_app.command("resend")
def resend(event_id: Annotated[str, typer.Argument(help="Event id.")]) -> None:
    """Deliver an event again to its channels (a new round of the retry schedule).

    Example: tollway notifications resend 01JE...
    """
    run_services(lambda services: services.notifications.resend(event_id))
    typer.echo(f"event {event_id} queued for delivery again")


@notifications_app.command("channels")
def list_channels(as_json: JsonOption = False) -> None:
    """List webhook channels (signing secrets are not shown).

    Example: tollway notifications channels --json
    """
    found = run_services(lambda services: services.notifications.channels(include_disabled=True))
    if as_json:
        from tollway.api.notification_codec import encode_channel

        typer.echo(orjson.dumps([encode_channel(c) for c in found], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"{len(found)} channels")
    for column in ("id", "name", "url", "disabled"):
        table.add_column(column)
    for channel in found:
        disabled = (
            "yes" + (f" ({channel.disabled_reason})" if channel.disabled_reason else "") if channel.disabled else ""
        )
        table.add_row(channel.id, channel.name, channel.url, disabled)
    Console().print(table)


@notifications_app.command("rules")
def list_rules() -> None:
    """List notification rules.

    Example: tollway notifications rules
    """
    found = run_services(lambda services: services.notifications.rules(include_disabled=True))
    table = Table(title=f"{len(found)} rules")
    for column in ("id", "name", "type", "channels", "features", "thresholds", "disabled"):
        table.add_column(column)
    for rule in found:
        table.add_row(
            rule.id,
            rule.name,
            rule.type,
            ", ".join(rule.channel_ids),
            ", ".join(rule.feature_keys),
            ", ".join(f"{t.value} {t.type}" for t in rule.thresholds),
            "yes" if rule.disabled else "",
        )
    Console().print(table)
