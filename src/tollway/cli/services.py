"""What the database commands share: run one piece of work over the services the composition root builds on
TOLLWAY_DATABASE_URL (the database migrated first), and fail with one line per problem (exit 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from tollway.cli.common import database_problem, fail

if TYPE_CHECKING:
    from tollway.wiring.services import Services

T = TypeVar("T")


def run_services(work: Callable[[Services], Awaitable[T]]) -> T:
    """Settings from the environment, the services opened, `work` run, the services closed. A domain error,
    a configuration problem or a database failure ends the command with one line naming it."""
    from tollway.errors import ConfigError, DomainError
    from tollway.settings import Settings
    from tollway.wiring.services import build_services

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fail(exc.problems)

    async def run() -> T:
        services = build_services(settings)
        try:
            await services.open()
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        fail([exc.message])
    except ConfigError as exc:
        fail(exc.problems)
    except Exception as exc:
        fail([database_problem(settings.database_url, exc)])
