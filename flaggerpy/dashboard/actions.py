"""The page's buttons: promote, abort, retry, pause and resume through ``flaggerpy``'s own commands.

They run :mod:`flaggerpy.ctl.actions` with the dashboard's client, which holds the user's own credentials: the
API server authorises each one by the user's RBAC, and a refusal comes back to the page as the 403 it was.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from flaggerpy.apis.annotations import Action
from flaggerpy.ctl import actions as ctl_actions
from flaggerpy.ctl.common import CtlError, describe_api_error
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import ApiError, Forbidden

NAMES = ("promote", "abort", "retry", "pause", "resume")


@dataclass(frozen=True)
class Outcome:
    """What the page shows after an action: the HTTP status to answer with and a sentence."""

    status: int
    message: str


async def perform(kube: KubeClient, namespace: str, name: str, action: str) -> Outcome:
    """Run ``action`` on the Canary ``namespace/name``; never raises for a refusal."""
    if action not in NAMES:
        return Outcome(404, f"unknown action {action!r} (one of {', '.join(NAMES)})")
    out = io.StringIO()
    try:
        if action in ("pause", "resume"):
            await ctl_actions.set_suspend(kube, namespace, name, action == "pause", out)
        else:
            await ctl_actions.request(kube, namespace, name, Action(action), out)
    except Forbidden as exc:
        return Outcome(403, f"{exc.message} (your RBAC permissions do not allow it)")
    except CtlError as exc:
        return Outcome(409, str(exc))
    except ApiError as exc:
        return Outcome(502, describe_api_error(exc))
    return Outcome(200, out.getvalue().strip())
