"""`tollway demo`: the whole billing story, offline, in well under a minute (docs/demo.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

DEMO_PACKAGES = ("openai", "httpx")  # the `demo` extra (Stripe is Tollway's local stand-in: nothing to install)


def demo_command(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Write the invoice's HTML and PDF into this folder (kept after the demo)."
        ),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary folder (database, journal, logs).")] = False,
    stripe: Annotated[
        bool,
        typer.Option("--stripe/--no-stripe", help="Push the invoice to a local Stripe stand-in (no account)."),
    ] = True,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve", help="Keep serving after the story (until Ctrl-C), to look at the dashboard at /dashboard."
        ),
    ] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 0,
) -> None:
    """Run the whole story offline: gateway requests, metered usage, invoice preview, period close, Stripe,
    HTML and PDF. Uses a temporary SQLite database and a clock the demo controls. At the end it prints the
    dashboard's URL and admin token; with --serve it keeps serving so you can look at the demo's data.

    Example: tollway demo --out ./demo-output
    Example: tollway demo --serve --port 8090
    """
    err = Console(stderr=True, highlight=False)
    try:
        from tollway.demo.story import DemoFailed, Story
    except ModuleNotFoundError as exc:
        if exc.name not in DEMO_PACKAGES:
            raise
        err.print(
            f"error: tollway demo needs {exc.name} (the demo's client side): pip install 'tollway[demo]'"
            " (`make demo` installs it)",
            soft_wrap=True,
        )
        raise typer.Exit(2) from None

    console = Console(highlight=False)
    story = Story(console, out=out.resolve() if out else None, keep=keep, stripe=stripe, serve=serve, port=port)
    try:
        asyncio.run(story.run())
    except DemoFailed as exc:
        err.print(f"[red]demo failed:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("demo interrupted")
        raise typer.Exit(130) from None
