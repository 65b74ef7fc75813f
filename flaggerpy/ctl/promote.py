"""``flaggerpy promote NAME``: open the confirm gates and skip the remaining steps of a running analysis."""

from __future__ import annotations

from flaggerpy.apis.annotations import Action
from flaggerpy.ctl.actions import manual_command

configure, run = manual_command(
    Action.PROMOTE, "skip the remaining analysis and promote the canary now (phase Progressing or WaitingPromotion)"
)
