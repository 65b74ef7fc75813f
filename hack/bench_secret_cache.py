"""What config tracking's Secret cache costs in memory: the cluster's Secrets kept whole, as the controller did,
against the metadata-and-checksum form it keeps now (``flaggerpy.canary.workload.secret_digest``).

The Secrets are shaped like a busy cluster's: TLS pairs, Helm release records (the biggest, gzip+base64 of the
chart), service-account-like tokens and small app Secrets. Each is decoded from JSON like a watch event and put
into an informer :class:`~flaggerpy.kube.informer.Store`; the figure is the Python heap the Store holds
(tracemalloc), per 1,000 Secrets and for the whole set.

      python3 hack/bench_secret_cache.py --secrets 5000 > /tmp/secret-cache.json
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flaggerpy.canary.workload import secret_digest
from flaggerpy.kube.informer import Store

# (name prefix, type, data sizes in bytes before base64), cycled through.
SHAPES: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("tls", "kubernetes.io/tls", {"tls.crt": 3_000, "tls.key": 1_700}),
    ("sh.helm.release.v1", "helm.sh/release.v1", {"release": 24_000}),
    ("token", "Opaque", {"token": 900, "ca.crt": 1_100, "namespace": 12}),
    ("app", "Opaque", {"username": 12, "password": 32, "url": 120}),
)


def secret(index: int) -> bytes:
    """The JSON of one Secret, as a watch event carries it."""
    prefix, kind, sizes = SHAPES[index % len(SHAPES)]
    data = {key: base64.b64encode(os.urandom(size)).decode() for key, size in sizes.items()}
    return json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": kind, "data": data,
        "metadata": {"name": f"{prefix}-{index}", "namespace": f"ns-{index % 200}", "uid": f"uid-{index}",
                     "resourceVersion": str(1000 + index), "labels": {"app": f"app-{index % 50}"},
                     "annotations": {"meta.helm.sh/release-name": f"rel-{index}"},
                     "creationTimestamp": "2026-12-04T12:00:00Z"},
    }).encode()


def cached_bytes(events: list[bytes], transform: Callable[[dict[str, Any]], dict[str, Any]] | None) -> int:
    """The heap a Store of ``events`` holds, with ``transform`` applied as the informer applies it."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = Store()
    for raw in events:
        obj = json.loads(raw)
        store.put(transform(obj) if transform else obj)
        del obj
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == len(events)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secrets", type=int, default=5000, help="Secrets in the cluster (default 5000)")
    args = parser.parse_args()
    events = [secret(i) for i in range(args.secrets)]
    whole = cached_bytes(events, None)
    digests = cached_bytes(events, secret_digest)
    mib = 1024 * 1024
    json.dump({
        "secrets": args.secrets,
        "wire_bytes": sum(map(len, events)),
        "cache_mib": {"whole_secrets": round(whole / mib, 1), "digests": round(digests / mib, 1)},
        "per_1000_mib": {"whole_secrets": round(whole / mib * 1000 / args.secrets, 2),
                         "digests": round(digests / mib * 1000 / args.secrets, 2)},
    }, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
