"""The AlertProvider ``type`` → message format table, in the shape of Flagger's notifier factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flaggerpy.alerts import discord, gchat, generic, msteams, rocket, slack
from flaggerpy.alerts.message import Alert, Target


@dataclass(frozen=True)
class ChatFormat:
    """How one service wants its messages: the body for an alert, and the URL to post it to."""

    payload: Callable[[Alert, Target], dict[str, Any]]
    endpoint: Callable[[str], str]


FORMATS: dict[str, ChatFormat] = {
    "slack": ChatFormat(slack.payload, slack.endpoint),
    "msteams": ChatFormat(msteams.payload, msteams.endpoint),
    "discord": ChatFormat(discord.payload, discord.endpoint),
    "rocket": ChatFormat(rocket.payload, rocket.endpoint),
    "gchat": ChatFormat(gchat.payload, gchat.endpoint),
    "generic": ChatFormat(generic.payload, generic.endpoint),
}


class UnsupportedProvider(ValueError):
    """The AlertProvider type is not one flaggerpy can send to."""


def chat_format(provider_type: str) -> ChatFormat:
    """The format for ``provider_type``; raises UnsupportedProvider naming the field and the supported types."""
    try:
        return FORMATS[provider_type]
    except KeyError:
        raise UnsupportedProvider(
            f"spec.type: {provider_type!r} is not supported (one of {', '.join(FORMATS)})"
        ) from None
