"""Does the controller's memory stay flat while canaries come and go? JSON on stdout, progress on stderr.

    python hack/bench_memory.py                       # 10,000 canaries, 500 at a time
    python hack/bench_memory.py --canaries 2000 --batch 200

The sandbox and one ``flaggerpy run`` each run in their own process. In every round the bench creates a batch of
Deployments and Canaries, waits until every Canary is ``Initialized`` (primary, Services and HTTPRoute created,
status written), deletes them all (the sandbox's garbage collector removes what the Canaries own), waits until the
controller's informers can no longer hold them, and samples the controller's resident memory. Each canary has its
own name, so a cache that keeps anything per canary after its delete grows with every round.

The report: one sample per round (canaries created so far, controller RSS and peak, seconds since the start),
``growth_mib`` from the first sample after warm-up (the first quarter of the rounds) to the last, and
``second_half_growth_mib`` over the second half of the rounds, once the bounded caches are full. Flat means the
second half stays within allocator noise while the number of canaries seen grows by thousands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import NAMESPACE, start_controller, start_sandbox, stop
from bench_cluster import Api, canary, deployment
from bench_proc import usage

_CANARIES = f"/apis/flagger.app/v1beta1/namespaces/{NAMESPACE}/canaries"
_DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


async def _each(names: list[str], work: Any) -> None:
    await asyncio.gather(*(work(name) for name in names))


async def _wait(label: str, done: Any, limit: float) -> None:
    """Poll ``done()`` (a coroutine) until it is true; the bench fails loudly rather than reporting a stuck run."""
    try:
        async with asyncio.timeout(limit):
            while True:
                if await done():
                    return
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise RuntimeError(f"timed out waiting for {label}") from None


async def one_round(api: Api, names: list[str], limit: float) -> None:
    """Create the batch, wait until initialised, delete it and wait until it is gone."""
    async def create(name: str) -> None:
        await api.create(_DEPLOYMENTS, deployment(name, NAMESPACE, "ghcr.io/stefanprodan/podinfo:6.0.0"))
        await api.create(_CANARIES, canary(name, NAMESPACE, interval=60, step_weight=10, max_weight=50))

    await _each(names, create)

    async def initialised() -> bool:
        items = (await api.get(_CANARIES)).get("items") or []
        return sum((c.get("status") or {}).get("phase") == "Initialized" for c in items) >= len(names)

    await _wait("the batch to be Initialized", initialised, limit)

    async def delete(name: str) -> None:
        await api.request("DELETE", f"{_CANARIES}/{name}")
        await api.request("DELETE", f"{_DEPLOYMENTS}/{name}")

    await _each(names, delete)

    async def gone() -> bool:
        canaries = (await api.get(_CANARIES)).get("items") or []
        deployments = (await api.get(_DEPLOYMENTS)).get("items") or []
        return not canaries and not deployments

    await _wait("the batch to be deleted", gone, limit)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the report."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        sandbox_args = argparse.Namespace(sandbox_history=args.history, gateway="instant")
        sandbox, url, kubeconfig = await start_sandbox(workdir, args.canaries, sandbox_args)
        controller_args = argparse.Namespace(threadiness=args.threadiness, kubeconfig_qps=-1.0, kubeconfig_burst=250,
                                             ha=False)
        replica = await start_controller(kubeconfig, workdir, 0, controller_args)
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        try:
            async with Api(url, concurrency=args.concurrency) as api:
                rounds = max(1, args.canaries // args.batch)
                for index in range(rounds):
                    names = [f"mem-{index}-{i}" for i in range(args.batch)]
                    await one_round(api, names, args.timeout)
                    # The informers see the deletes a moment after the API server answered the last list.
                    await asyncio.sleep(args.settle)
                    now = usage(replica.process.pid)
                    if now is None:
                        raise RuntimeError("the controller exited:\n"
                                           + (workdir / "controller-0.log").read_text()[-2000:])
                    samples.append({"round": index + 1, "canaries_created": (index + 1) * args.batch,
                                    "rss_mib": round(now.rss_mib, 1), "peak_rss_mib": round(now.peak_rss_mib, 1),
                                    "elapsed_s": round(time.monotonic() - started, 1)})
                    _say(json.dumps(samples[-1]))
        finally:
            await stop(replica.process)
            await stop(sandbox)
    warm = samples[max(0, len(samples) // 4 - 1)]
    return {
        "canaries": len(samples) * args.batch,
        "batch": args.batch,
        "samples": samples,
        "warm_up_sample": warm["round"],
        "growth_mib": round(samples[-1]["rss_mib"] - warm["rss_mib"], 1),
        "growth_kib_per_canary": round((samples[-1]["rss_mib"] - warm["rss_mib"]) * 1024
                                       / max(1, samples[-1]["canaries_created"] - warm["canaries_created"]), 3),
        # Bounded caches (the Event recorder's LRU of 4,096 entries) fill during the first half: the second half
        # shows whether anything still grows with the number of canaries seen.
        "second_half_growth_mib": round(samples[-1]["rss_mib"] - samples[len(samples) // 2 - 1]["rss_mib"], 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canaries", type=int, default=10_000, help="canaries created (and deleted) in all")
    parser.add_argument("--batch", type=int, default=500, help="canaries alive at once")
    parser.add_argument("--threadiness", type=int, default=4, help="the controller's workers")
    parser.add_argument("--concurrency", type=int, default=32, help="the bench's concurrent API requests")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a round may take")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between a round's end and its sample")
    parser.add_argument("--history", type=int, default=200_000, help="the sandbox's watch history")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run and print the report."""
    report = asyncio.run(run(parse_args(argv)))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
