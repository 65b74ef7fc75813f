"""Fixtures shared by the unit tests of the metric providers (``test_provider_*``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.unit.test_provider_fake_backend import FakeBackend, client, running_backend


@pytest.fixture
async def backend() -> AsyncIterator[FakeBackend]:
    """A local metrics backend that answers what the test scripts and records every request."""
    async with running_backend() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session like the metric checker's."""
    async with client() as http:
        yield http
