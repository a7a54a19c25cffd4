"""The one kind of command group every `tollway` command belongs to: help texts in full, usage lines plain.

- A group's list of commands shows each command's whole first sentence (click cuts it at the terminal width
  with "..." otherwise; the text wraps instead).
- Usage lines name arguments in capitals (`tollway apply [OPTIONS] FILE`), not in typer's braces (`{file}`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType


class PlainUsage(TyperCommand):
    """Usage lines in the usual form (`tollway check CONFIG`), without typer's braces around required arguments."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # typer vendors its own click Context
        pieces = []
        for piece in super().collect_usage_pieces(ctx):
            dots = "..." if piece.endswith("...") else ""  # a variadic argument: FILES...
            piece = piece.removesuffix("...")
            if piece.startswith("{") and piece.endswith("}"):
                piece = piece[1:-1].upper()
            elif piece.startswith("[") and piece.endswith("]") and piece[1:-1].isidentifier():
                piece = f"[{piece[1:-1].upper()}]"  # an optional argument: [REVISION]
            pieces.append(piece + dots)
        return pieces


class FullHelpGroup(TyperGroup):
    """Lists its commands with their whole short help (wrapped), never cut with an ellipsis."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class Commands(typer.Typer):
    """typer.Typer whose groups list commands in full and whose commands print plain usage lines."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", FullHelpGroup)
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("rich_markup_mode", None)  # plain text: "[env TOLLWAY_HOST, ...]" is not markup
        super().__init__(**kwargs)

    def command(  # the base's keyword list, passed through
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs["cls"] = kwargs.get("cls") or PlainUsage
        return super().command(*args, **kwargs)
