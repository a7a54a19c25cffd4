"""What the demo prints: numbered steps, lines of text, and an invoice's lines as a table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from tollway.money import format_money, format_quantity


class Narrator:
    def __init__(self, console: Console, steps: int) -> None:
        self.console = console
        self.steps = steps
        self._step_no = 0

    def step(self, title: str) -> None:
        self._step_no += 1
        self.console.print()
        self.console.rule(f"[bold cyan]Step {self._step_no}/{self.steps}: {title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def lines_table(self, invoice: dict[str, Any], title: str) -> None:
        currency = invoice["currency"]
        table = Table(title=title)
        table.add_column("line")
        table.add_column("quantity", justify="right")
        table.add_column(f"rate ({currency})", justify="right")
        table.add_column(f"amount ({currency})", justify="right")
        for line in invoice["lines"]:
            charge = line.get("charge") or {}
            quantity = line.get("quantity")
            table.add_row(
                line.get("featureKey") or line.get("rateCardKey") or line["name"],
                format_quantity(Decimal(quantity)) if quantity is not None else "",
                charge.get("unitPrice") or "",
                line["amount"],
            )
        table.add_section()
        table.add_row("total", "", "", format_money(int(invoice["totalMinor"]), currency))
        self.console.print(table)
