"""A Kong decK file (`_format_version: "3.0"`) as a Tollway config (pure: plain data in, plain data out).

What is translated: services and routes carrying an `ai-proxy` or `ai-proxy-advanced` plugin (global,
service- or route-scoped: the route's own wins, then its service's, then a global one) become providers,
models and `routes:` entries (an OpenAI-format endpoint at the route's path with the plugin's model as the
default); consumers with `keyauth_credentials` become consumers with their keys; decK's
`${{ env "VAR" }}` becomes `${VAR}`. Everything else is named in the notes, one line each, never dropped
silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENV = re.compile(r"""\$\{\{\s*env\s+"([A-Za-z_][A-Za-z0-9_]*)"\s*\}\}""")
ROUTE_TYPES = {"llm/v1/chat": "chat", "llm/v1/embeddings": "embeddings"}
# Kong's ai-proxy provider -> Tollway's provider type (and where its key goes)
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "azure": "azure_openai"}
COMPATIBLE = {"mistral", "llama2", "cohere", "huggingface"}  # OpenAI-compatible when given an upstream_url
BALANCERS = {
    "round-robin": "weighted",
    "lowest-latency": "lowest_latency",
    "least-connections": "least_busy",
    "priority": "priority",
}
KEY_HEADERS = {"apikey", "x-api-key", "authorization"}  # where Tollway reads a key
QUIET_PLUGINS = {"key-auth", "ai-proxy", "ai-proxy-advanced"}
NAME = re.compile(r"[^A-Za-z0-9._:/@-]+")


@dataclass
class Imported:
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def env_references(value: Any) -> Any:
    """decK's `${{ env "VAR" }}` as Tollway's `${VAR}`, in every string of `value`."""
    if isinstance(value, str):
        return ENV.sub(lambda m: "${" + m[1] + "}", value)
    if isinstance(value, list):
        return [env_references(v) for v in value]
    if isinstance(value, dict):
        return {k: env_references(v) for k, v in value.items()}
    return value


class _Builder:
    def __init__(self) -> None:
        self.providers: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []

    def provider(self, where: str, model: Mapping[str, Any], auth: Mapping[str, Any]) -> str | None:
        kind = str(model.get("provider") or "")
        options = model.get("options") if isinstance(model.get("options"), dict) else {}
        assert isinstance(options, dict)
        upstream = options.get("upstream_url")
        if kind in PROVIDERS:
            tollway_type = PROVIDERS[kind]
        elif kind in COMPATIBLE and isinstance(upstream, str):
            tollway_type = "openai"
        else:
            self.notes.append(
                f"{where}: provider {kind or '(none)'!r} not translated (Tollway speaks openai, anthropic, gemini,"
                " azure and any OpenAI-compatible server given its upstream_url)"
            )
            return None
        key = _api_key(auth)
        base_url: str | None = None
        if isinstance(upstream, str):
            base_url = upstream
            for suffix in ("/chat/completions", "/embeddings"):
                base_url = base_url.removesuffix(suffix)
        entry: dict[str, Any] = {"type": tollway_type}
        if key is not None:
            entry["api_key"] = key
        if tollway_type == "azure_openai":
            instance = options.get("azure_instance")
            if not isinstance(instance, str):
                self.notes.append(f"{where}: azure provider without azure_instance not translated")
                return None
            base_url = base_url or f"https://{instance}.openai.azure.com"
            entry["api_version"] = str(options.get("azure_api_version") or "2024-10-21")
        if base_url is not None:
            entry["base_url"] = base_url
        identity = (tollway_type, entry.get("api_key"), base_url)
        found = self.providers.get(identity)
        if found is None:
            taken = {p["name"] for p in self.providers.values()}
            name = _free(kind if kind in PROVIDERS else f"{kind}-compatible", taken)
            found = self.providers[identity] = {"name": name, **entry}
        return str(found["name"])

    def model(self, name: str, targets: list[dict[str, Any]], balance: str | None) -> str:
        wanted: dict[str, Any] = {"targets": targets}
        if balance is not None:
            wanted["balance"] = balance
        for existing_name, existing in self.models.items():
            if {k: v for k, v in existing.items() if k != "name"} == wanted and existing_name.startswith(name):
                return existing_name
        chosen = _free(NAME.sub("-", name).strip("-") or "model", set(self.models))
        self.models[chosen] = {"name": chosen, **wanted}
        return chosen


def import_kong(documents: Iterable[Mapping[str, Any]]) -> Imported:
    """One or more decK documents (as `deck gateway apply a.yaml b.yaml` merges them) -> a Tollway config."""
    services: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    consumers: list[dict[str, Any]] = []
    plugins: list[dict[str, Any]] = []
    builder = _Builder()
    for number, raw in enumerate(documents):
        doc = env_references(dict(raw))
        version = doc.get("_format_version")
        if version is not None and str(version) not in ("3.0", "1.1"):
            builder.notes.append(f"document {number + 1}: _format_version {version!r} read as 3.0")
        for service in _list(doc, "services"):
            services.append(service)
            for route in _list(service, "routes"):
                routes.append({**route, "service": {"name": service.get("name")}})
            for plugin in _list(service, "plugins"):
                plugins.append({**plugin, "service": service.get("name")})
        for route in _list(doc, "routes"):
            routes.append(route)
            for plugin in _list(route, "plugins"):
                plugins.append({**plugin, "route": route.get("name")})
        for consumer in _list(doc, "consumers"):
            consumers.append(consumer)
            for plugin in _list(consumer, "plugins"):
                plugins.append({**plugin, "consumer": consumer.get("username")})
        plugins.extend(_list(doc, "plugins"))
        for section in doc:
            if section not in ("_format_version", "_transform", "_info", "services", "routes", "consumers", "plugins"):
                builder.notes.append(f"document {number + 1}: section {section!r} not translated")

    notes = builder.notes
    for plugin in plugins:
        name = plugin.get("name")
        if name not in QUIET_PLUGINS:
            notes.append(
                f"{_scope(plugin)}: plugin {name!r} not translated (see docs/kong.md for Tollway's equivalents)"
            )
        if name == "key-auth":
            settings = plugin.get("config") if isinstance(plugin.get("config"), dict) else {}
            assert isinstance(settings, dict)
            names = [str(n).lower() for n in settings.get("key_names") or ["apikey"]]
            other = [n for n in names if n not in KEY_HEADERS]
            if other:
                notes.append(
                    f"{_scope(plugin)}: key-auth key_names {', '.join(other)} not translated: Tollway reads keys"
                    " from 'Authorization: Bearer', 'x-api-key' and 'apikey'"
                )
            if settings.get("key_in_body"):
                notes.append(f"{_scope(plugin)}: key-auth key_in_body not translated (keys travel in headers)")

    if not any(p.get("name") == "key-auth" for p in plugins):
        notes.append("no key-auth plugin: Tollway requires a consumer key on every route all the same")
    service_names = {s.get("name") for s in services}
    out_routes: list[dict[str, Any]] = []
    for route in routes:
        where = f"route {route.get('name') or route.get('paths')!r}"
        reference = route.get("service")
        service_name = reference.get("name") if isinstance(reference, dict) else reference
        if service_name is not None and service_name not in service_names:
            notes.append(f"{where}: service {service_name!r} is not defined")
        proxy = _proxy_for(plugins, route.get("name"), service_name)
        if proxy is None:
            notes.append(f"{where}: no ai-proxy plugin applies: not an LLM route, not translated")
            continue
        paths = []
        for path in route.get("paths") or []:
            if isinstance(path, str) and path.startswith("/"):
                paths.append(path.rstrip("/") or "/")
            else:
                notes.append(f"{where}: regex path {path!r} not translated (Tollway routes are exact paths)")
        if not paths:
            continue
        translated = _translate_proxy(builder, proxy, where)
        if translated is None:
            continue
        kind, model = translated
        out_routes.extend({"path": path, "model": model, "type": kind} for path in paths)
        for extra in ("hosts", "methods", "headers", "snis"):
            if route.get(extra):
                notes.append(f"{where}: {extra} matching not translated (Tollway matches the path only)")

    out_consumers = []
    for consumer in consumers:
        username = consumer.get("username")
        if not isinstance(username, str):
            notes.append(f"consumer {consumer.get('custom_id')!r}: no username, not translated")
            continue
        keys = []
        for credential in consumer.get("keyauth_credentials") or []:
            key = credential.get("key") if isinstance(credential, dict) else None
            if isinstance(key, str) and len(key) >= 8:
                keys.append(key)
            else:
                notes.append(f"consumer {username!r}: a key shorter than 8 characters is not translated")
        if not keys:
            notes.append(
                f"consumer {username!r}: no key-auth key of 8+ characters: not translated"
                " (give it keys with `tollway keys create`)"
            )
            continue
        out_consumers.append({"username": username, "keys": keys})
        if consumer.get("custom_id"):
            notes.append(f"consumer {username!r}: custom_id not translated (use a customer's usage_from)")
        for section in ("acls", "basicauth_credentials", "jwt_secrets", "oauth2_credentials", "groups"):
            if consumer.get(section):
                notes.append(f"consumer {username!r}: {section} not translated")

    out: dict[str, Any] = {
        "providers": list(builder.providers.values()),
        "models": list(builder.models.values()),
        "consumers": out_consumers,
        "routes": out_routes,
    }
    return Imported({k: v for k, v in out.items() if v}, notes)


def _translate_proxy(builder: _Builder, plugin: Mapping[str, Any], where: str) -> tuple[str, str] | None:
    """(endpoint kind, Tollway model name) for a route's ai-proxy(-advanced) plugin, or None with a note."""
    config = plugin.get("config") if isinstance(plugin.get("config"), dict) else {}
    assert isinstance(config, dict)
    where = f"{where} ({plugin.get('name')})"
    if plugin.get("name") == "ai-proxy":
        entries = [config]
        balance = None
    else:
        entries = [t for t in config.get("targets") or [] if isinstance(t, dict)]
        balancer = config.get("balancer") if isinstance(config.get("balancer"), dict) else {}
        assert isinstance(balancer, dict)
        algorithm = str(balancer.get("algorithm") or "round-robin")
        balance = BALANCERS.get(algorithm)
        if balance is None:
            notes_line = f"{where}: balancer {algorithm!r} not translated (weighted used)"
            builder.notes.append(notes_line)
            balance = "weighted"
    kinds = set()
    targets = []
    for entry in entries:
        kind = ROUTE_TYPES.get(str(entry.get("route_type") or config.get("route_type") or "llm/v1/chat"))
        if kind is None:
            builder.notes.append(
                f"{where}: route_type {entry.get('route_type') or config.get('route_type')!r} not translated"
                " (llm/v1/chat and llm/v1/embeddings are)"
            )
            return None
        kinds.add(kind)
        model = entry.get("model") if isinstance(entry.get("model"), dict) else {}
        assert isinstance(model, dict)
        model_name = model.get("name")
        if not isinstance(model_name, str):
            builder.notes.append(f"{where}: no model.name (Tollway routes need a default model)")
            return None
        auth = entry.get("auth") if isinstance(entry.get("auth"), dict) else {}
        assert isinstance(auth, dict)
        provider = builder.provider(where, model, auth)
        if provider is None:
            return None
        target: dict[str, Any] = {"provider": provider, "model": model_name}
        if balance == "weighted" and isinstance(entry.get("weight"), int) and entry["weight"] != 100:
            target["weight"] = entry["weight"]
        targets.append(target)
        logging = config.get("logging") if isinstance(config.get("logging"), dict) else {}
        assert isinstance(logging, dict)
        if logging.get("log_payloads"):
            builder.notes.append(f"{where}: logging.log_payloads not translated (Tollway never logs payloads)")
    if not targets or len(kinds) != 1:
        builder.notes.append(f"{where}: targets of different route types not translated")
        return None
    name = str(targets[0]["model"]) if len(targets) == 1 else f"{targets[0]['model']}-balanced"
    return kinds.pop(), builder.model(name, targets, balance if len(targets) > 1 else None)


def _proxy_for(plugins: list[dict[str, Any]], route: Any, service: Any) -> dict[str, Any] | None:
    """The ai-proxy(-advanced) plugin that applies to a route: its own, else its service's, else a global one."""
    proxies = [p for p in plugins if p.get("name") in ("ai-proxy", "ai-proxy-advanced") and p.get("enabled", True)]
    for scope_key, scope_value in (("route", route), ("service", service)):
        for plugin in proxies:
            if scope_value is not None and _ref(plugin.get(scope_key)) == scope_value:
                return plugin
    for plugin in proxies:
        if not any(plugin.get(k) for k in ("route", "service", "consumer")):
            return plugin
    return None


def _api_key(auth: Mapping[str, Any]) -> str | None:
    value = auth.get("header_value") or auth.get("param_value")
    if not isinstance(value, str):
        return None
    return value.removeprefix("Bearer ").strip()


def _scope(plugin: Mapping[str, Any]) -> str:
    for key in ("route", "service", "consumer"):
        if plugin.get(key):
            return f"{key} {_ref(plugin[key])!r}"
    return "global"


def _ref(value: Any) -> Any:
    return value.get("name") or value.get("username") or value.get("id") if isinstance(value, dict) else value


def _list(doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _free(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"
