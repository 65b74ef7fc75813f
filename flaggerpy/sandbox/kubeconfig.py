"""The kubeconfig file that points kubectl and kubernetes-asyncio at the sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

NAME = "flaggerpy-sandbox"


def kubeconfig(url: str, namespace: str = "default", token: str = "sandbox") -> dict[str, object]:
    """A kubeconfig with cluster, user and context all named ``flaggerpy-sandbox``; ``token``: a user registered
    with the sandbox's authoriser (the default acts as the administrator)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {"server": url}}],
        # Unregistered tokens (this default one too) act as the administrator; it keeps clients that insist on
        # credentials happy.
        "users": [{"name": NAME, "user": {"token": token}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": namespace}}],
        "current-context": NAME,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str, namespace: str = "default", token: str = "sandbox") -> Path:
    """Write the kubeconfig to ``path`` (mode 0600, like kubectl's own) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(url, namespace, token), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path
