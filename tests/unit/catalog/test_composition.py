"""The catalog's services stay composed: no service inherits from another (each is built from its ports, the
clock and the services it uses), and no use-case module shares a name with a model module of billing/."""

from __future__ import annotations

import inspect
from pathlib import Path

import tollway.billing
import tollway.billing.catalog as catalog

SERVICES = [getattr(catalog, name) for name in catalog.__all__ if name != "Catalog"]


def test_no_catalog_service_inherits_from_another() -> None:
    assert len(SERVICES) >= 7
    for service in SERVICES:
        assert inspect.isclass(service)
        assert service.__bases__ == (object,), f"{service.__name__} inherits from {service.__bases__}"


def test_use_case_modules_do_not_share_a_name_with_the_models() -> None:
    billing = Path(tollway.billing.__file__).parent
    models = {p.stem for p in billing.glob("*.py")}
    use_cases = {p.stem for p in (billing / "catalog").glob("*.py")} - {"__init__"}
    assert use_cases, "no use-case modules found"
    assert not models & use_cases, sorted(models & use_cases)
