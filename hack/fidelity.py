"""Differential fidelity: replay the same API interactions against the sandbox and a real kube-apiserver and report
where the answers differ.

    python3 hack/fidelity.py                      # JSON report on stdout, progress on stderr
    python3 hack/fidelity.py --out report.json --cases stale_update,tables

The real side is the control plane of hack/cluster (built with hack/cluster/build); both servers get the Gateway
API and flaggerpy CRDs. Each case of hack/fidelity_corpus.py runs in a fresh namespace of the same name on both;
its exchanges are normalised (hack/fidelity_wire.py) and compared one by one: status code, body (reason, message,
causes and their field paths included) and, for watches, the event sequence. The report says how many cases (and
how many of the critical ones, which the controller or kubectl depends on) are identical, and lists every
difference with both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "cluster"))
from control_plane import REPO_ROOT, ControlPlane, cached_binaries, default_crds  # noqa: E402
from fidelity_corpus import CASES, Case  # noqa: E402
from fidelity_wire import Exchange, Recorder, differences  # noqa: E402

from flaggerpy.sandbox import Sandbox  # noqa: E402

GATEWAY_CRDS = Path(os.environ.get("FLAGGERPY_GATEWAY_CRDS", REPO_ROOT.parent / "shared" / "gateway-api-v1.6.1"))


def crd_documents() -> list[dict[str, Any]]:
    """The CRDs both servers serve."""
    docs = []
    for directory in default_crds(GATEWAY_CRDS):
        for path in sorted(directory.glob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text())
                     if d and d.get("kind") == "CustomResourceDefinition"]
    return docs


def namespace_of(index: int, case: Case) -> str:
    """The case's namespace, the same on both servers."""
    return f"fid-{index:02d}-{case.name.replace('_', '-')}"[:63]


def compare(sandbox: list[Exchange], real: list[Exchange]) -> list[dict[str, Any]]:
    """Every difference between two transcripts, exchange by exchange."""
    out: list[dict[str, Any]] = []
    if len(sandbox) != len(real):
        out.append({"exchange": None, "what": "exchanges", "sandbox": len(sandbox), "real": len(real)})
    for index, (a, b) in enumerate(zip(sandbox, real, strict=False)):
        where = {"exchange": index, "request": b.request}
        if a.status != b.status:
            out.append({**where, "what": "status", "sandbox": a.status, "real": b.status})
        for diff in differences(a.body, b.body):
            out.append({**where, "what": "body", **diff})
        if a.events is not None or b.events is not None:
            for diff in differences(a.events or [], b.events or []):
                out.append({**where, "what": "events", **diff})
    return out


async def run_case(index: int, case: Case, sides: dict[str, Recorder]) -> dict[str, Any]:
    """Run one case on both servers (concurrently) and compare."""
    namespace = namespace_of(index, case)
    errors: dict[str, str] = {}

    async def one(name: str, recorder: Recorder) -> None:
        recorder.new_case()
        await recorder.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": namespace}}, record=False)
        try:
            await case.run(recorder, namespace)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(one(name, recorder) for name, recorder in sides.items()))
    sandbox, real = sides["sandbox"].transcript, sides["real"].transcript
    diffs = compare(sandbox, real)
    result: dict[str, Any] = {
        "name": case.name, "point": case.point, "critical": case.critical, "namespace": namespace,
        "exchanges": len(real), "identical": not diffs and not errors,
        "exchanges_identical": sum(1 for a, b in zip(sandbox, real, strict=False) if a == b),
    }
    if errors:
        result["errors"] = errors
    if diffs:
        result["differences"] = diffs
        result["sandbox"] = [e.as_dict() for e in sandbox]
        result["real"] = [e.as_dict() for e in real]
    return result


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """N of M identical, overall and for the critical points."""
    critical = [r for r in results if r["critical"]]
    return {
        "cases": len(results),
        "identical": sum(1 for r in results if r["identical"]),
        "critical_cases": len(critical),
        "critical_identical": sum(1 for r in critical if r["identical"]),
        "exchanges": sum(r["exchanges"] for r in results),
        "exchanges_identical": sum(r["exchanges_identical"] for r in results),
        "differing": [r["name"] for r in results if not r["identical"]],
    }


async def replay_on(plane: ControlPlane, cases: list[Case], progress: bool = False) -> dict[str, Any]:
    """Replay ``cases`` against a fresh sandbox and the running control plane ``plane``; return the report."""
    started = time.monotonic()
    async with Sandbox(dataplane=False, ready_delay=0.05) as sb:
        for doc in crd_documents():
            await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        sides = {"sandbox": Recorder("sandbox", sb.url, None, "sandbox"),
                 "real": Recorder("real", plane.url, plane.admin_ssl(), None)}
        async with sides["sandbox"], sides["real"]:
            results = []
            for index, case in enumerate(cases):
                result = await run_case(index, case, sides)
                results.append(result)
                if progress:
                    mark = "same" if result["identical"] else f"{len(result.get('differences', []))} diffs"
                    print(f"{case.name}: {mark}", file=sys.stderr)
    build = plane.binaries / "build.json"
    versions = json.loads(build.read_text()) if build.exists() else {}
    return {
        "real": {"kube-apiserver": versions.get("kube"), "etcd": versions.get("etcd")},
        "seconds": round(time.monotonic() - started, 1),
        "summary": summary(results),
        "cases": results,
    }


async def replay(cases: list[Case], workdir: Path) -> dict[str, Any]:
    """Start a control plane in ``workdir``, replay ``cases`` against it and a sandbox, stop it."""
    binaries = cached_binaries()
    if binaries is None:
        raise SystemExit("the control plane is not built: run hack/cluster/build first")
    plane = ControlPlane(workdir, binaries, nodes=1, crds=default_crds(GATEWAY_CRDS))
    await asyncio.to_thread(plane.start)
    try:
        return await replay_on(plane, cases, progress=True)
    finally:
        await asyncio.to_thread(plane.stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the JSON report here (default: stdout)")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    wanted = {n for n in args.cases.split(",") if n}
    unknown = wanted - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if not wanted or c.name in wanted]
    with tempfile.TemporaryDirectory(prefix="flaggerpy-fidelity-") as tmp:
        report = asyncio.run(replay(cases, Path(tmp)))
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
        s = report["summary"]
        print(f"{s['identical']} of {s['cases']} cases identical ({s['critical_identical']} of "
              f"{s['critical_cases']} critical); report in {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
