"""Outbound HTTP shared by the alert senders, the webhook runner and the metric checks.

Alerts and analysis are sibling layers that may not import each other, yet both hold one aiohttp session that is
either borrowed or owned, and both retry with the same kind of backoff; this bottom-layer module is that piece.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

USER_AGENT = "flaggerpy"
# Rate limiting and server errors may pass on a later attempt; 501 says the server will never support the call.
RETRY_STATUSES = frozenset({429, *range(500, 600)}) - {501}

RetryOn = type[BaseException] | tuple[type[BaseException], ...]


class SessionUser:
    """Base of an object that makes all its HTTP calls through one aiohttp session.

    A ``session`` passed in is borrowed and left open. Without one, a session is created on first use (lazily, so
    the object can be built outside a running event loop) and closed by :meth:`close`. Use the object as an async
    context manager, or call :meth:`close`.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this object created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session


def retry_policy(
    retries: int,
    *,
    backoff_min: float,
    backoff_max: float,
    on: RetryOn,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """Up to ``retries`` attempts after the first while the failure is one of ``on``; the last failure is re-raised.

    The pause before each retry doubles from ``backoff_min`` up to ``backoff_max`` seconds.
    """
    return AsyncRetrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff_min, min=backoff_min, max=backoff_max),
        retry=retry_if_exception_type(on),
        before_sleep=before_sleep,
        reraise=True,
    )
