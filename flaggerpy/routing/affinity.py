"""Session affinity (``analysis.sessionAffinity``) on Gateway API routes, with Flagger's semantics.

While the canary gets traffic, responses from the canary backend set a cookie, and a rule matching that cookie in
the ``Cookie`` header sends those users to the canary every time. With ``primaryCookieName`` the primary's
responses set a second cookie, valid for one analysis interval, that pins its users to the primary. When the
canary weight is back to 0 the rule for the run's cookie answers with ``Max-Age=-1`` so browsers drop it.

Flagger keeps random cookie values in the Canary status. Here they are derived from the Canary's uid and the
revision under analysis (``status.lastAppliedSpec``): unguessable without reading the Canary, stable across
controller restarts and leader changes, new for every revision. The status still shows them in Flagger's fields
(``sessionAffinityCookie``, ``previousSessionAffinityCookie``), and the cookie expired after a run is the previous one
the status names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from flaggerpy.apis.jsondata import mapping

_INACTIVE_PHASES = ("", "Initializing", "Initialized")


def cookie_value(canary: Mapping[str, Any], role: str) -> str:
    """The cookie value of one revision's run: 16 hex characters, ``role`` is "canary" or "primary"."""
    meta = mapping(canary.get("metadata"))
    status = mapping(canary.get("status"))
    identity = meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    seed = f"{identity}/{status.get('lastAppliedSpec', '')}/{role}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def status_cookies(canary: Mapping[str, Any]) -> dict[str, str]:
    """The session-affinity fields Flagger keeps in the Canary status, for the status as it is about to be written.

    While the canary gets traffic ``sessionAffinityCookie`` (and ``primarySessionAffinityCookie`` with
    ``primaryCookieName``) hold ``name=value`` of the cookies handed out; once the weight is back to 0 the canary's
    cookie moves to ``previousSessionAffinityCookie``, the one the route now expires. An empty dict without
    ``sessionAffinity``; the fields are Flagger's, the values are this module's derived ones.
    """
    spec = mapping(canary.get("spec"))
    session = mapping(mapping(spec.get("analysis") or spec.get("canaryAnalysis")).get("sessionAffinity"))
    status = mapping(canary.get("status"))
    name = session.get("cookieName")
    if not name:
        return {}
    out = {k: status[k] for k in ("previousSessionAffinityCookie",) if status.get(k)}
    weight = status.get("canaryWeight") or 0
    if isinstance(weight, int) and weight > 0:
        out["sessionAffinityCookie"] = f"{name}={cookie_value(canary, 'canary')}"
        if session.get("primaryCookieName"):
            out["primarySessionAffinityCookie"] = f"{session['primaryCookieName']}={cookie_value(canary, 'primary')}"
    elif status.get("sessionAffinityCookie"):
        out["previousSessionAffinityCookie"] = status["sessionAffinityCookie"]
    return out


def expired_cookie(canary: Mapping[str, Any], name: str) -> str:
    """The value of the cookie to expire once the weight is back to 0: the one the status says was handed out last
    (Flagger's ``previousSessionAffinityCookie``), else the current revision's."""
    previous = mapping(canary.get("status")).get("previousSessionAffinityCookie")
    if isinstance(previous, str) and previous.startswith(f"{name}="):
        return previous[len(name) + 1:]
    return cookie_value(canary, "canary")


def build_cookie(affinity: Mapping[str, Any], name: str, value: str, max_age: int) -> str:
    """A ``Set-Cookie`` value with the attributes the user configured (Domain, Path, SameSite, ...)."""
    parts = [f"{name}={value}", f"Max-Age={max_age}"]
    if affinity.get("domain"):
        parts.append(f"Domain={affinity['domain']}")
    if affinity.get("httpOnly"):
        parts.append("HttpOnly")
    if affinity.get("partitioned"):
        parts.append("Partitioned")
    if affinity.get("path"):
        parts.append(f"Path={affinity['path']}")
    if affinity.get("sameSite"):
        parts.append(f"SameSite={affinity['sameSite']}")
    if affinity.get("secure"):
        parts.append("Secure")
    return "; ".join(parts)


def cookie_match(name: str, value: str) -> dict[str, Any]:
    """An HTTPRouteMatch on requests whose ``Cookie`` header carries ``name=value``."""
    return {
        "headers": [
            {"name": "Cookie", "type": "RegularExpression", "value": f".*{re.escape(name)}={re.escape(value)}.*"}
        ]
    }


def max_age(affinity: Mapping[str, Any]) -> int:
    """The canary cookie's lifetime in seconds; Flagger's default is one day."""
    value = affinity.get("maxAge")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 86400


def run_ended(canary: Mapping[str, Any]) -> bool:
    """True when a run of the current revision may have handed out cookies (so they need expiring)."""
    status = mapping(canary.get("status"))
    return bool(status.get("lastAppliedSpec")) and status.get("phase", "") not in _INACTIVE_PHASES


def is_cookie_rule(rule: Mapping[str, Any], cookie_names: tuple[str, ...]) -> bool:
    """True for a sticky rule: one whose matches test the ``Cookie`` header for one of ``cookie_names``."""
    for match in rule.get("matches") or ():
        for header in match.get("headers") or ():
            if str(header.get("name", "")).lower() != "cookie" or header.get("type") != "RegularExpression":
                continue
            if any(name and re.escape(name) + "=" in str(header.get("value", "")) for name in cookie_names):
                return True
    return False
