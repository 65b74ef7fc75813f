"""``flaggerpy abort NAME``: roll the canary back now: all traffic to the primary, phase Failed."""

from __future__ import annotations

from flaggerpy.apis.annotations import Action
from flaggerpy.ctl.actions import manual_command

configure, run = manual_command(Action.ABORT, "roll the canary back now: all traffic to the primary, phase Failed")
