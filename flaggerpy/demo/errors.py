"""The demo's own failure: it could not run (a backend did not start, a port was taken, a wait timed out)."""

from __future__ import annotations


class DemoError(Exception):
    """The demo could not run; the message says which part failed and, for a flag, names it."""
