"""Deliver one JSON message: a timeout per attempt, retries with backoff, optional proxy and bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from flaggerpy.outbound import RETRY_STATUSES, OutboundRefused, address_problem, retry_policy


@dataclass(frozen=True)
class DeliverySettings:
    """Limits of alert delivery; tests shrink the backoff."""

    # Flagger gives a chat service 5 seconds per message.
    attempt_seconds: float = 5.0
    retries: int = 2
    backoff_min: float = 0.5
    backoff_max: float = 5.0
    max_error_body: int = 512


def url_problem(url: str, *, proxy: bool = False) -> str | None:
    """Why ``url`` cannot be posted to (or, with ``proxy``, be gone through), or None. The URL itself is left out:
    webhook URLs carry secrets. A proxy may carry its credentials as ``user:password@``."""
    return address_problem(url, allow_user_info=proxy)


def normalize_proxy(proxy: str) -> str:
    """A proxy address with a scheme; ``my-proxy:3128`` (as Flagger's docs write it) means ``http://my-proxy:3128``."""
    proxy = proxy.strip()
    if proxy and "://" not in proxy:
        return f"http://{proxy}"
    return proxy


class DeliveryError(Exception):
    """The service refused the message or could not be reached; the text is safe to log (no URL, no token)."""


class _Retryable(DeliveryError):
    """A refusal worth another attempt (429, 5xx)."""


async def _attempt(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    proxy: str | None,
    settings: DeliverySettings,
) -> None:
    try:
        async with session.post(
            url,
            json=body,
            headers=headers,
            proxy=proxy,
            timeout=aiohttp.ClientTimeout(total=settings.attempt_seconds),
            allow_redirects=False,
        ) as resp:
            if 200 <= resp.status < 300:
                return
            if 300 <= resp.status < 400:
                raise DeliveryError(f"HTTP {resp.status}: redirects are not followed")
            text = (await resp.content.read(settings.max_error_body)).decode("utf-8", errors="replace").strip()
            error = _Retryable if resp.status in RETRY_STATUSES else DeliveryError
            raise error(f"HTTP {resp.status}: {text}".rstrip(": "))
    except TimeoutError:
        raise _Retryable(f"no answer within {settings.attempt_seconds:g}s") from None
    except OutboundRefused as exc:
        raise DeliveryError(str(exc)) from None
    except aiohttp.InvalidURL:
        raise DeliveryError("request failed: invalid URL") from None
    except aiohttp.ClientError as exc:
        # aiohttp's messages can carry the URL, which holds the webhook secret: keep only the kind of failure.
        raise _Retryable(f"request failed: {type(exc).__name__}") from None


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    *,
    token: str = "",
    proxy: str = "",
    settings: DeliverySettings,
) -> None:
    """POST ``body`` as JSON; raises DeliveryError once the retries are spent or the service refused it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    retrying = retry_policy(
        settings.retries, backoff_min=settings.backoff_min, backoff_max=settings.backoff_max, on=_Retryable
    )
    async for attempt in retrying:
        with attempt:
            await _attempt(session, url, body, headers, proxy or None, settings)
