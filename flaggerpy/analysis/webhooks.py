"""Flagger's webhooks: POST a ``CanaryWebhookPayload`` to each ``analysis.webhooks[]`` of a type and judge the answer.

Semantics follow Flagger: an answer with status 200-202 passes (anything else, a timeout or a network error fails),
``timeout`` defaults to 10s per attempt, ``retries`` re-sends on network errors, 429 and 5xx with exponential
backoff, ``disableTLS`` skips certificate checks. What a pass *means* depends on the type and is the engine's
business: a gate (``confirm-rollout``, ``confirm-traffic-increase``, ``confirm-promotion``) stays shut while any hook
fails; a ``rollback`` hook that passes asks for a rollback; ``event`` hooks receive every Kubernetes Event.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from tenacity import AsyncRetrying

from flaggerpy.analysis.base import HookType, StepContext, WebhookResult
from flaggerpy.apis.errors import SpecError
from flaggerpy.log import get_logger
from flaggerpy.outbound import (
    RETRY_STATUSES,
    OutboundPolicy,
    OutboundRefused,
    SessionUser,
    address_problem,
    retry_policy,
)

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary, CanaryWebhook

_log = get_logger("flaggerpy.analysis.webhooks")

# Flagger accepts 200, 201 and 202 (and nothing above): a hook answering 204 does not pass there, nor here.
_LAST_PASSING_STATUS = 202
EVENTS_HOOK_NAME = "events"


@dataclass(frozen=True)
class WebhookSettings:
    """Limits of webhook calls; tests shrink the backoff.

    ``default_timeout`` applies to a hook without ``timeout`` and to the controller-wide event webhook.
    The backoff between retries grows from ``backoff_min`` to ``backoff_max`` seconds, like Flagger's retrying
    HTTP client (1s to 30s).
    """

    default_timeout: float = 10.0
    max_duration: float = 300.0
    """The operator's cap on one webhook call, retries and their backoff included (``--webhook-max-duration``): a
    hook's ``timeout`` is cut to it and its ``retries`` to what fits, so a tenant's ``timeout: 1h, retries: 100``
    holds nothing for longer than this."""
    backoff_min: float = 1.0
    backoff_max: float = 30.0
    # Enough of a failing hook's answer to explain itself in a condition or an Event, never a whole page.
    max_error_body: int = 512


class _AttemptTimedOut(Exception):
    """The last attempt of a webhook call timed out (``timeout``), as opposed to the call's whole budget."""


class _RetryableAnswer(Exception):
    """A status code worth retrying (429, 5xx except 501)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def canary_checksum(canary: Canary) -> str:
    """Identifies the release under analysis: a hash of ``status.trackedConfigs`` and ``status.lastAppliedSpec``.

    Like Flagger's payload ``checksum``, it changes exactly when the workload spec or a tracked config changes.
    """
    return status_checksum(canary.status.tracked_configs, canary.status.last_applied_spec)


def status_checksum(tracked_configs: Mapping[str, str] | None, last_applied_spec: str | None) -> str:
    """:func:`canary_checksum` from the two status fields (the engine holds them as JSON, not as a model), so hook
    and event payloads carry the same checksum for the same revision."""
    configs = tuple(sorted(dict(tracked_configs or {}).items()))
    try:
        return _checksum(configs, last_applied_spec or "")
    except TypeError:  # a value that cannot be a cache key (a hand-written status): hash it uncached
        return _checksum.__wrapped__(configs, last_applied_spec or "")


@functools.lru_cache(maxsize=1024)
def _checksum(configs: tuple[tuple[str, Any], ...], last_applied_spec: str) -> str:
    # Asked for every hook type of every step, but a revision's checksum changes once per release: serialising
    # and hashing it each time was 2% of the leader's CPU at 300 canaries.
    material = json.dumps({"trackedConfigs": dict(configs), "lastAppliedSpec": last_applied_spec}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def build_payload(canary: Canary, phase: str, checksum: str, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    """Flagger's ``CanaryWebhookPayload``: name, namespace, phase, checksum and (when any) metadata."""
    payload: dict[str, Any] = {
        "name": canary.metadata.name,
        "namespace": canary.metadata.namespace,
        "phase": phase,
        "checksum": checksum,
    }
    if metadata:
        payload["metadata"] = dict(metadata)
    return payload


def build_event_payload(
    canary: Canary, event_type: str, message: str, phase: str, metadata: Mapping[str, str] | None
) -> dict[str, Any]:
    """The payload of an ``event`` hook: the Event in ``metadata`` (eventMessage, eventType, timestamp in ms).

    The hook's own metadata is added but never overrides the three event keys, as in Flagger.
    """
    event_metadata = {
        "eventMessage": message,
        "eventType": event_type,
        "timestamp": str(time.time_ns() // 1_000_000),
    }
    for key, value in (metadata or {}).items():
        event_metadata.setdefault(key, value)
    return build_payload(canary, phase, canary_checksum(canary), event_metadata)


def _url_problem(url: str) -> str | None:
    problem = address_problem(url)
    return None if problem is None else f"url: {problem}"


def _failure(status: int, body: str) -> str:
    """Why an answer did not pass. Only an error answer's body is quoted: a 2xx or 3xx body is the server's data
    (a redirect target, a credentials document), not an explanation. The URL is left out: its query may hold a
    token, and the hook's name already says which one failed."""
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    if status < 300:
        return f"HTTP {status}: only 200, 201 and 202 pass"
    return f"HTTP {status}: {body}".rstrip(": ")


def hooks_of(canary: Canary, hook_type: HookType) -> list[CanaryWebhook]:
    """The canary's ``analysis.webhooks`` of ``hook_type``, in spec order."""
    return [hook for hook in canary.analysis.webhooks or [] if hook.hook_type == hook_type]


class WebhookRunner(SessionUser):
    """Calls webhooks for the engine through one shared aiohttp session.

    ``event_webhook`` is the controller-wide hook (Flagger's ``-event-webhook``) that receives the Events of
    canaries that define no ``event`` hook of their own. Use as an async context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        event_webhook: str | None = None,
        settings: WebhookSettings | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        super().__init__(session, policy)
        self._event_webhook = event_webhook or None
        self._settings = settings or WebhookSettings()

    async def run(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        """Call every webhook of ``hook_type`` concurrently; an empty list when the canary has none."""
        hooks = hooks_of(canary, hook_type)
        if not hooks:
            return []
        checksum = step.checksum or canary_checksum(canary)
        calls = [self._call(hook, build_payload(canary, step.phase, checksum, hook.metadata)) for hook in hooks]
        results = list(await asyncio.gather(*calls))
        for result in results:
            if not result.passed:
                _log.info(
                    "webhook did not pass",
                    canary=canary.key,
                    webhook=result.name,
                    type=str(hook_type),
                    status=result.status_code,
                    error=result.error,
                )
        return results

    def sends_events(self, canary: Canary) -> bool:
        """Whether :meth:`send_event` would call anything for ``canary`` (its ``event`` hooks, else the
        controller-wide one)."""
        return self._event_webhook is not None or bool(hooks_of(canary, HookType.EVENT))

    async def send_event(
        self, canary: Canary, type: str, message: str, phase: str | None = None
    ) -> list[WebhookResult]:
        """Send one Event to the canary's ``event`` hooks, or to the controller-wide event webhook when it has none.

        ``type`` is the Kubernetes Event type (``Normal`` or ``Warning``); ``phase`` defaults to the canary's
        current phase. Failures are logged and returned, never raised.
        """
        current_phase = phase if phase is not None else canary.status.phase or ""
        hooks = hooks_of(canary, HookType.EVENT)
        if hooks:
            calls = [
                self._call(hook, build_event_payload(canary, type, message, current_phase, hook.metadata))
                for hook in hooks
            ]
        elif self._event_webhook is not None:
            calls = [
                self._post(
                    EVENTS_HOOK_NAME,
                    HookType.EVENT,
                    self._event_webhook,
                    build_event_payload(canary, type, message, current_phase, None),
                    attempt_seconds=self._settings.default_timeout,
                    retries=0,
                    verify_tls=True,
                )
            ]
        else:
            return []
        results = list(await asyncio.gather(*calls))
        for result in results:
            if not result.passed:
                _log.warning("event webhook failed", canary=canary.key, webhook=result.name, error=result.error)
        return results

    async def _call(self, hook: CanaryWebhook, payload: dict[str, Any]) -> WebhookResult:
        hook_type = HookType(hook.hook_type)
        mute = bool(hook.mute_alert)
        try:
            timeout = hook.timeout_seconds if hook.timeout else self._settings.default_timeout
        except SpecError as exc:
            return WebhookResult(hook.name, hook_type, False, error=str(exc), mute_alert=mute)
        if timeout <= 0:
            timeout = self._settings.default_timeout
        cap = self._settings.max_duration
        timeout = min(timeout, cap)
        return await self._post(
            hook.name,
            hook_type,
            hook.url,
            payload,
            attempt_seconds=timeout,
            # Attempts that fit in the cap (rounded first: 0.3 / 0.1 is 2.9999999999999996 in binary).
            retries=min(hook.retries or 0, max(0, math.floor(round(cap / timeout, 6)) - 1)),
            verify_tls=not hook.disable_tls,
            mute_alert=mute,
        )

    async def _post(
        self,
        name: str,
        hook_type: HookType,
        url: str,
        payload: dict[str, Any],
        *,
        attempt_seconds: float,
        retries: int,
        verify_tls: bool,
        mute_alert: bool = False,
    ) -> WebhookResult:
        """POST ``payload`` with up to ``retries`` retries; never raises (the outcome is the result)."""
        problem = _url_problem(url)
        if problem is not None:
            return WebhookResult(name, hook_type, False, error=problem, mute_alert=mute_alert)
        settings = self._settings
        retrying = retry_policy(
            retries,
            backoff_min=settings.backoff_min,
            backoff_max=settings.backoff_max,
            on=(aiohttp.ClientError, TimeoutError, _RetryableAnswer),
        )
        budget = settings.max_duration
        try:
            async with asyncio.timeout(budget):
                status, body = await self._retrying(retrying, url, payload, attempt_seconds, verify_tls)
        except _RetryableAnswer as exc:
            status, body = exc.status, exc.body
        except _AttemptTimedOut:
            return WebhookResult(
                name, hook_type, False, error=f"no answer within {attempt_seconds:g}s", mute_alert=mute_alert
            )
        except TimeoutError:
            # An attempt cut to the whole budget ends with both timers due at once, and either may fire first: that
            # is the attempt's timeout, said the same way whichever won.
            timed_out = (f"no answer within {attempt_seconds:g}s" if attempt_seconds >= budget
                         else f"no answer within {budget:g}s, the limit of one webhook call with its retries")
            return WebhookResult(name, hook_type, False, mute_alert=mute_alert, error=timed_out)
        except OutboundRefused as exc:
            return WebhookResult(name, hook_type, False, error=f"url: {exc}", mute_alert=mute_alert)
        except aiohttp.ClientError as exc:
            # aiohttp's messages carry the whole URL, query (and its tokens) included: keep the kind of failure.
            return WebhookResult(
                name, hook_type, False, error=f"request failed: {type(exc).__name__}", mute_alert=mute_alert
            )
        passed = status <= _LAST_PASSING_STATUS
        error = None if passed else _failure(status, body)
        return WebhookResult(name, hook_type, passed, status_code=status, error=error, mute_alert=mute_alert)

    async def _retrying(
        self, retrying: AsyncRetrying, url: str, payload: dict[str, Any], attempt_seconds: float, verify_tls: bool
    ) -> tuple[int, str]:
        """The attempts of one call; the last attempt's timeout comes out as :class:`_AttemptTimedOut`, so it is
        told apart from the whole call's budget running out."""
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(url, payload, attempt_seconds, verify_tls)
        except TimeoutError as exc:
            raise _AttemptTimedOut() from exc
        raise AssertionError("unreachable: the retry policy either returns or re-raises")

    async def _attempt(
        self, url: str, payload: dict[str, Any], attempt_seconds: float, verify_tls: bool
    ) -> tuple[int, str]:
        """One POST; raises _RetryableAnswer for 429/5xx so tenacity retries it."""
        async with self._client().post(
            url,
            json=payload,
            timeout=aiohttp.ClientTimeout(total=attempt_seconds),
            ssl=verify_tls,
            allow_redirects=False,
        ) as resp:
            raw = await resp.content.read(self._settings.max_error_body)
            body = raw.decode("utf-8", errors="replace").strip()
            if resp.status in RETRY_STATUSES:
                raise _RetryableAnswer(resp.status, body)
            return resp.status, body
