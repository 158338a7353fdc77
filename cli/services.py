"""The registry of AOC's services, by the name `aoc run` takes.

Each entry names the service's public `service` module, imported when the service is asked for (like
Faust's transport and store registries): `aoc run store` never imports Faust, `aoc demo` never imports
what it does not run. Adding a service is one entry here and one `service.py` with `build` and
`DEFINITION`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from aoc_common.service import ServiceDefinition

SERVICE_MODULES: dict[str, str] = {
    "collector": "aoc_collector.service",
    "normalizer": "aoc_normalizer.service",
    "store": "aoc_store.service",
    "api": "aoc_api.service",
    "siem_forwarder": "aoc_siem_forwarder.service",
    "alerter": "aoc_alerter.service",
}
SERVICES: tuple[str, ...] = tuple(SERVICE_MODULES)


def service_module(name: str) -> ModuleType:
    """The service's public module (`build`, `DEFINITION` and its other entry points)."""
    return importlib.import_module(SERVICE_MODULES[name])


def definition(name: str) -> ServiceDefinition:
    found = service_module(name).DEFINITION
    assert isinstance(found, ServiceDefinition), name
    return found
