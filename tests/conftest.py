"""Every test runs with the offline guard: no connection may leave the machine.

Tests marked ``live`` (real provider services, skipped without credentials)
opt out. ``test_offline.py`` installs and removes the guard itself to prove how
it behaves, so it runs without this outer one.

Providers a test registers (``registry.register``) are forgotten when it ends,
so no test sees another's fakes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clinsum.offline import offline_guard


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("live") or request.node.path.name == "test_offline.py":
        yield
        return
    with offline_guard():
        yield


@pytest.fixture(autouse=True)
def _provider_registry() -> Iterator[None]:
    from clinsum.providers import registry

    saved = dict(registry._REGISTERED)
    try:
        yield
    finally:
        registry._REGISTERED.clear()
        registry._REGISTERED.update(saved)
