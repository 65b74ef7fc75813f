"""Timestamps as kube-apiserver writes them."""

from __future__ import annotations

import datetime


def now(ahead: float = 0.0) -> str:
    """RFC 3339, seconds precision, UTC (``2026-01-02T03:04:05Z``); ``ahead`` seconds in the future."""
    stamp = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ahead)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
