"""``flaggerpy lint FILE... [-]``: validate Canary, MetricTemplate and AlertProvider manifests without a cluster.

Prints one line per finding, ``FILE:LINE: field: problem``, every problem of every document in one run (fields the
API server would drop, bad URLs, schema and cross-field errors, references and queries), and a summary on stderr;
exits 1 when there is any error (warnings alone exit 0, unless ``--strict``). ``-`` reads standard input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from flaggerpy.ctl import lintyaml
from flaggerpy.ctl.common import EXIT_FAILED, EXIT_OK
from flaggerpy.ctl.lintrules import ERROR, FLAGGER_KINDS, Finding, lint
from flaggerpy.ctl.lintyaml import Document

STDIN = "-"


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``flaggerpy lint``."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files (multi-document); - for stdin")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")


def read_documents(source: str, text: str, findings: list[Finding]) -> list[Document]:
    """The documents of one YAML stream; a syntax error becomes a finding and ends that stream."""
    try:
        return lintyaml.read_documents(source, text)
    except lintyaml.YamlError as exc:
        findings.append(Finding(source, exc.line, "", f"YAML syntax error: {exc.message}"))
        return exc.read


def lint_sources(sources: list[tuple[str, str]]) -> list[Finding]:
    """Findings for ``(name, text)`` YAML streams linted together (references resolve across them)."""
    findings: list[Finding] = []
    docs = [doc for name, text in sources for doc in read_documents(name, text, findings)]
    order = {name: i for i, (name, _) in reversed(list(enumerate(sources)))}
    return sorted(findings + lint(docs), key=lambda f: (order.get(f.source, 0), f.line))


def _read(path: str, stdin: TextIO) -> str:
    if path == STDIN:
        return stdin.read()
    return Path(path).read_text(encoding="utf-8")


def main(files: list[str], strict: bool, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Lint ``files``; findings on ``out``, the summary on ``err``; the exit code."""
    sources: list[tuple[str, str]] = []
    unreadable = 0
    for path in files:
        try:
            sources.append(("<stdin>" if path == STDIN else path, _read(path, stdin)))
        except (OSError, UnicodeDecodeError) as exc:
            out.write(f"{path}: cannot read: {exc.strerror if isinstance(exc, OSError) else exc}\n")
            unreadable += 1
    findings = lint_sources(sources)
    for finding in findings:
        out.write(f"{finding}\n")
    errors = unreadable + sum(1 for f in findings if f.severity == ERROR)
    warnings = len(findings) - (errors - unreadable)
    err.write(f"{len(files)} file(s) checked ({', '.join(FLAGGER_KINDS)}): {errors} error(s), "
              f"{warnings} warning(s)\n")
    return EXIT_FAILED if errors or (strict and warnings) else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Entry point of ``flaggerpy lint``."""
    return main(args.files, args.strict, sys.stdout, sys.stderr, sys.stdin)
