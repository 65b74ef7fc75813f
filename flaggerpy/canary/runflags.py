"""The flags of ``flaggerpy run`` with their environment variables, spelt the way Flagger's manifests spell them.

Every ``--some-flag`` is also read from ``FLAGGERPY_SOME_FLAG``; the command line wins over that variable. Where
Flagger documents its own variable (``EVENT_WEBHOOK_URL``, ``SLACK_CHANNEL``, ...) it is honoured too and, as in
Flagger, a non-empty one wins over the flag: Flagger's Helm chart injects them from Secrets next to flags it also
sets. (The webhook URLs' variables, ``SLACK_URL`` and co., are applied by the alerts module's ``DefaultAlerts``.)
Flagger is a Go program, so its manifests write ``-log-level=info`` (one dash) and ``-enable-config-tracking=false``
(a boolean with a value); both spellings are accepted besides the usual ``--flag`` and ``--no-flag``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "FLAGGERPY_"

# Go's strconv.ParseBool, which Flagger's flag package uses for boolean flags.
_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})


def parse_bool(text: str) -> bool:
    """A Go-style boolean (1/t/true or 0/f/false, any case); ValueError otherwise."""
    key = text.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true or false)")


def parse_int(text: str) -> int:
    """An integer; ValueError with the text otherwise."""
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def parse_float(text: str) -> float:
    """A number; ValueError with the text otherwise."""
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def at_least(value: int, minimum: int) -> int:
    """``value`` when it is >= ``minimum``; ValueError otherwise."""
    if value < minimum:
        raise ValueError(f"must be >= {minimum}, not {value}")
    return value


def parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated list without blanks (``"a, b,"`` is ``("a", "b")``)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class Flag:
    """One flag: its long name without dashes, default, parser of a text value, help and Flagger's variable."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    boolean: bool = False
    flagger_env: str | None = None
    """Flagger's own environment variable; a non-empty value overrides the command line, as in Flagger."""

    @property
    def dest(self) -> str:
        """The attribute on the parsed namespace."""
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        """The ``FLAGGERPY_...`` variable of this flag."""
        return ENV_PREFIX + self.dest.upper()

    def help_text(self) -> str:
        """The help line with the variables that set this flag."""
        names = f"${self.env}" + (f", ${self.flagger_env} (wins over the flag)" if self.flagger_env else "")
        return f"{self.help} [env: {names}]"


class _Typed(argparse.Action):
    """Stores the flag's parsed value; argparse reports a bad value as ``argument --flag: <problem>``."""

    def __init__(self, option_strings: Sequence[str], dest: str, flag: Flag, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.flag = flag

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            setattr(namespace, self.dest, self.flag.parse(str(values)))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


class _GoBool(argparse.Action):
    """A boolean: ``--flag``, ``--flag=false`` (Go's spelling) and ``--no-flag``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        # Only the --no-<flag> spelling negates: a flag whose own name starts with "no-" (Flagger's
        # -no-cross-namespace-refs) is set by its name.
        if option_string is not None and option_string.lstrip("-").replace("-", "_") == f"no_{self.dest}":
            if values is not None:
                raise argparse.ArgumentError(self, f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
            return
        try:
            setattr(namespace, self.dest, True if values is None else parse_bool(values))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    """Declare ``flags`` on ``parser``; a flag absent from the command line is absent from the namespace."""
    for flag in flags:
        if flag.boolean:
            parser.add_argument(f"--{flag.name}", f"--no-{flag.name}", dest=flag.dest, action=_GoBool, nargs="?",
                                metavar="true|false", default=argparse.SUPPRESS, help=flag.help_text())
            # Flagger's one-dash spelling, hidden to keep the help readable.
            parser.add_argument(f"-{flag.name}", dest=flag.dest, action=_GoBool, nargs="?",
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            parser.add_argument(f"--{flag.name}", dest=flag.dest, action=_Typed, flag=flag,
                                metavar=flag.dest.upper(), default=argparse.SUPPRESS, help=flag.help_text())
            parser.add_argument(f"-{flag.name}", dest=flag.dest, action=_Typed, flag=flag,
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _from_text(flag: Flag, text: str) -> Any:
    return parse_bool(text) if flag.boolean else flag.parse(text)


def resolve(args: argparse.Namespace, flags: Sequence[Flag],
            environ: Mapping[str, str]) -> tuple[argparse.Namespace, list[str]]:
    """Every flag's value: Flagger's variable, else the command line, else ``FLAGGERPY_*``, else the default.

    Returns the complete namespace and the problems of values read from the environment, each naming the
    variable; a variable with a bad value leaves the default in place.
    """
    out = argparse.Namespace(**vars(args))
    problems: list[str] = []
    for flag in flags:
        sources = [(flag.flagger_env, environ.get(flag.flagger_env, ""))] if flag.flagger_env else []
        if not hasattr(args, flag.dest):
            sources.append((flag.env, environ.get(flag.env, "")))
        value = getattr(args, flag.dest, flag.default)
        for variable, text in sources:
            if not text:
                continue
            try:
                value = _from_text(flag, text)
            except ValueError as exc:
                problems.append(f"${variable}: {exc}")
                continue
            break
        setattr(out, flag.dest, value)
    return out, problems
