"""The target policy (balancing, breakers, budgets, cool-downs) of one model on a frozen clock, driven by hand:
`Harness(model).order()` is the order the policy tries the targets in; `attempt(...)` reports a try's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tollway.clock import FrozenClock
from tollway.config.schema import TollwayConfig, balanced_models
from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.gateway.hooks import Admit, Attempt
from tollway.gateway.routing import Route, Target
from tollway.identity.key_index import Identity
from tollway.metering.llm import TokenPrice

START = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


class Named:
    """A provider as the policy sees it: a name."""

    native_paths = frozenset({"/chat/completions"})

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        return None

    async def send(self, request: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def config(model: dict[str, Any], *more: dict[str, Any]) -> TollwayConfig:
    names = {t["provider"] for m in (model, *more) for t in m["targets"]}
    providers = [{"name": n, "type": "openai", "base_url": f"http://{n}.example/v1"} for n in sorted(names)]
    return TollwayConfig.model_validate({"providers": providers, "models": [model, *more]})


class Harness:
    def __init__(self, model: dict[str, Any], prices: dict[tuple[str, str], TokenPrice] | None = None) -> None:
        self.clock = FrozenClock(START)
        self.config = config(model)
        self.policy = BalancingPolicy(self.clock)
        self.policy.configure(balanced_models(self.config.models, self.config.providers), prices or {})
        self.route = Route(
            model=model["name"],
            targets=tuple(Target(Named(t["provider"]), t["model"]) for t in model["targets"]),
        )
        self.call = Admit("req_1", Identity("acme", None), model["name"], "/v1/chat/completions", False)

    def order(self, *, stream: bool = False) -> list[str]:
        call = self.call if not stream else Admit("req_2", Identity("acme", None), self.route.model, "/x", True)
        return [t.provider.name for t in self.policy.targets(self.route, call)]

    def target(self, provider: str) -> Target:
        return next(t for t in self.route.targets if t.provider.name == provider)

    def attempt(self, provider: str, cause: str = "ok", **fields: Any) -> None:
        target = self.target(provider)
        self.policy.started(target)
        values: dict[str, Any] = {"status": 200 if cause == "ok" else 502, "ttfb_s": 0.1, "total_s": 0.2}
        values.update(fields)
        self.policy.finished(Attempt(target=target, cause=cause, **values))

    def later(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))


def targets(*names: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"provider": name, "model": "m", **extra} for name in names]
