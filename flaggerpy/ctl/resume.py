"""``flaggerpy resume NAME``: clear ``spec.suspend`` so the controller picks the canary up where it stopped."""

from __future__ import annotations

from flaggerpy.ctl.actions import suspend_command

configure, run = suspend_command(False, "resume a paused canary (removes spec.suspend)")
