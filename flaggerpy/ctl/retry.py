"""``flaggerpy retry NAME``: re-run the analysis of a Failed revision without touching the pod template."""

from __future__ import annotations

from flaggerpy.apis.annotations import Action
from flaggerpy.ctl.actions import manual_command

configure, run = manual_command(
    Action.RETRY, "re-run the analysis of a Failed revision without changing the pod template"
)
