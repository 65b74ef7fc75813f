"""``flaggerpy pause NAME``: set ``spec.suspend`` so the controller leaves the canary exactly as it is."""

from __future__ import annotations

from flaggerpy.ctl.actions import suspend_command

configure, run = suspend_command(True, "pause the canary (spec.suspend: true): the controller stops acting on it")
