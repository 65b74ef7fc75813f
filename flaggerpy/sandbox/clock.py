"""Timestamps as kube-apiserver writes them."""

from __future__ import annotations

import datetime


def now() -> str:
    """RFC 3339, seconds precision, UTC (``2026-01-02T03:04:05Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
