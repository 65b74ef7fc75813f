"""A local Kubernetes control plane from the binaries ``hack/cluster/build`` makes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and kwok for fake nodes, all on loopback ports.

Used by ``hack/cluster/up`` and by the ``real`` test suite (tests/real/conftest.py). Pods get IPs from the fake
nodes' pod CIDRs, which are in 127.0.0.0/8; Services get cluster IPs from a loopback range too, so no address the
cluster hands out points off this machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pki import Credential, Pki

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SERVICE_CIDR = "127.96.0.0/16"
# The first address of the service range: the `kubernetes` Service's cluster IP, which the serving cert must name.
KUBERNETES_SERVICE_IP = "127.96.0.1"
POD_CIDR_PREFIX = "127.128"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLER_NAMESPACE = "flaggerpy-system"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(RuntimeError):
    """The control plane could not be started (the message names the component and its log)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build(quiet: bool = False) -> Path:
    """Run ``hack/cluster/build`` (it reuses its cache) and return the directory holding the binaries."""
    stderr = subprocess.DEVNULL if quiet else None
    out = subprocess.run([str(HERE / "build")], check=True, stdout=subprocess.PIPE, stderr=stderr, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def cached_binaries() -> Path | None:
    """The cached binaries' directory when a build is complete, without building."""
    try:
        out = subprocess.run([str(HERE / "build"), "--cached"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError:
        return None
    return Path(out.stdout.strip())


def wait_until(what: str, probe: Callable[[], bool], timeout: float, log: Path | None = None,
               alive: Callable[[], str | None] | None = None) -> None:
    """Poll ``probe`` every 0.1 s until true; raise ClusterError naming ``what`` (and ``log``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if alive is not None and (dead := alive()):
            raise ClusterError(f"{dead} exited while waiting for {what}" + (f"; see {log}" if log else ""))
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}" + (f"; see {log}" if log else ""))
        time.sleep(0.1)


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str], name: str = "flaggerpy-real",
                     namespace: str = "default") -> Path:
    """A kubeconfig for ``server`` trusting ``ca``, authenticating with ``user`` (client-certificate/key or token)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cert_user(credential: Credential) -> dict[str, str]:
    return {"client-certificate": str(credential.cert), "client-key": str(credential.key)}


@dataclass
class Process:
    """One component: its command line, log file and, once started, its process."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def exited(self) -> str | None:
        """A description when the process has exited, else None."""
        if self.popen is not None and self.popen.poll() is not None:
            return f"{self.name} (exit code {self.popen.returncode})"
        return None


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok in ``workdir``.

    ``start()`` writes the PKI and kubeconfigs, starts every component, registers ``nodes`` fake nodes and waits
    until they are Ready; ``stop()`` ends every process it started (SIGTERM, then SIGKILL after ``grace``).
    """

    workdir: Path
    binaries: Path
    nodes: int = 2
    node_pods: int = 1000
    start_timeout: float = 120.0
    grace: float = 10.0
    controller_qps: int = 200
    crds: list[Path] = field(default_factory=list)
    """CRD manifests applied before kube-controller-manager starts: its garbage collector looks for new resource
    types only every 30 s, so CRDs applied later would leave their objects uncollected for that long."""
    processes: list[Process] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        """The cluster CA certificate."""
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig authenticating as a cluster admin (system:masters)."""
        return self.workdir / "admin.kubeconfig"

    def _log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def _start(self, name: str, argv: list[str]) -> Process:
        log = self._log(name)
        proc = Process(name, argv, log)
        with log.open("ab") as out:
            # Each component in its own session: a Ctrl-C meant for `up` reaches it only through stop().
            proc.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.processes.append(proc)
        self._write_pids()
        return proc

    def _write_pids(self) -> None:
        pids = {p.name: p.popen.pid for p in self.processes if p.popen is not None}
        (self.workdir / "pids.json").write_text(json.dumps(pids))

    def _dead(self) -> str | None:
        for proc in self.processes:
            if dead := proc.exited():
                return dead
        return None

    def admin_ssl(self) -> ssl.SSLContext:
        """A TLS context trusting the cluster CA and presenting the admin client certificate."""
        pki = self.workdir / "pki"
        return self._ssl(Credential(pki / "admin.crt", pki / "admin.key"))

    def _ssl(self, credential: Credential) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(credential.cert), str(credential.key))
        return context

    def _get(self, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, context=context, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (OSError, urllib.error.URLError):
            return 0, b""

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster as admin (or with ``kubeconfig``): the release's own kubectl from the
        build, or the one on PATH when the build has none."""
        built = self.binaries / "kubectl"
        binary = str(built) if built.exists() else "kubectl"
        argv = [binary, f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", "--request-timeout=30s", *args]
        result = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(argv[1:])} failed: {result.stderr.strip()}")
        return result

    def start(self) -> None:
        """Start the control plane and wait until it is ready (nodes Ready, the default ServiceAccount made)."""
        for sub in ("logs", "pki", "etcd"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        bins = self.binaries
        pki = Pki(self.workdir / "pki")
        self.port = free_port()
        serving = pki.serving("apiserver", ["localhost", "kubernetes", "kubernetes.default",
                                            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
                              ["127.0.0.1", KUBERNETES_SERVICE_IP])
        admin = pki.client("admin", "flaggerpy-admin", "system:masters")
        clients = {
            "kube-controller-manager": pki.client("controller-manager", "system:kube-controller-manager"),
            "kube-scheduler": pki.client("scheduler", "system:kube-scheduler"),
            # kwok plays every kubelet: it updates node and pod status for all fake nodes at once.
            "kwok": pki.client("kwok", "flaggerpy-kwok", "system:masters"),
        }
        sa = pki.service_account_keys()
        write_kubeconfig(self.admin_kubeconfig, self.url, self.ca, _cert_user(admin))
        kubeconfigs = {
            name: write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.url, self.ca, _cert_user(cred))
            for name, cred in clients.items()
        }

        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        etcd = self._start("etcd", [
            str(bins / "etcd"), "--name=local", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=local=http://127.0.0.1:{peer_port}",
            # A throwaway test cluster: durability on power loss buys nothing and fsyncs cost the shared disk.
            "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=4294967296",
        ])

        def etcd_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as response:
                    return bool(json.loads(response.read()).get("health") == "true")
            except (OSError, ValueError):
                return False

        wait_until("etcd /health", etcd_healthy, self.start_timeout, etcd.log, self._dead)

        apiserver = self._start("kube-apiserver", [
            str(bins / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={sa.cert}", f"--service-account-signing-key-file={sa.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            # The `kubernetes` Endpoints would name 127.0.0.1, which Endpoints validation refuses; nothing here
            # reaches the API server through that Service.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ])
        admin_ssl = self._ssl(admin)
        wait_until("kube-apiserver /readyz", lambda: self._get("/readyz", admin_ssl)[0] == 200,
                   self.start_timeout, apiserver.log, self._dead)

        if self.crds:
            self.apply(self.crds)
            self.wait_crds()

        qps = [f"--kube-api-qps={self.controller_qps}", f"--kube-api-burst={self.controller_qps * 2}"]
        kcm = kubeconfigs["kube-controller-manager"]
        self._start("kube-controller-manager", [
            str(bins / "kube-controller-manager"), f"--kubeconfig={kcm}",
            f"--authentication-kubeconfig={kcm}", f"--authorization-kubeconfig={kcm}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa.key}", f"--root-ca-file={self.ca}",
            f"--cluster-signing-cert-file={self.ca}", f"--cluster-signing-key-file={self.workdir / 'pki' / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
            # Deleted pods of fake nodes are reaped at once, not after the default 12 500 terminated pods.
            "--terminated-pod-gc-threshold=100", "--profiling=false", "--v=1", *qps,
        ])
        sched = kubeconfigs["kube-scheduler"]
        self._start("kube-scheduler", [
            str(bins / "kube-scheduler"), f"--kubeconfig={sched}",
            f"--authentication-kubeconfig={sched}", f"--authorization-kubeconfig={sched}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            "--profiling=false", "--v=1", *qps,
        ])
        self._start("kwok", [
            str(bins / "kwok"), f"--kubeconfig={kubeconfigs['kwok']}", f"--config={bins / 'kwok-stages.yaml'}",
            f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
            "--node-ip=127.0.0.1", f"--cidr={POD_CIDR_PREFIX}.255.0/24",
            "--node-lease-duration-seconds=40",
        ])
        self.register_nodes()
        wait_until("fake nodes Ready", self._nodes_ready, self.start_timeout, self._log("kwok"), self._dead)
        wait_until("the default ServiceAccount", self._default_service_account, self.start_timeout,
                   self._log("kube-controller-manager"), self._dead)

    def register_nodes(self) -> None:
        """Create the fake nodes kwok manages, each with a /24 pod CIDR in 127.128.0.0/16."""
        docs = []
        for index in range(self.nodes):
            capacity = {"cpu": "64", "memory": "512Gi", "pods": str(self.node_pods)}
            docs.append({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{index}",
                    "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": f"kwok-node-{index}", "kubernetes.io/os": "linux",
                               "kubernetes.io/arch": "amd64", "type": "kwok"},
                },
                "spec": {"podCIDR": f"{POD_CIDR_PREFIX}.{index}.0/24",
                         "podCIDRs": [f"{POD_CIDR_PREFIX}.{index}.0/24"]},
                "status": {"capacity": capacity, "allocatable": capacity},
            })
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(docs))

    def _nodes_ready(self) -> bool:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        items = json.loads(result.stdout)["items"]
        ready = [n for n in items for c in n.get("status", {}).get("conditions") or []
                 if c.get("type") == "Ready" and c.get("status") == "True"]
        return len(ready) >= self.nodes

    def _default_service_account(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    def apply(self, paths: Sequence[Path], server_side: bool = True) -> None:
        """Apply manifests (files or directories); server-side, as the Gateway API CRDs are too large for the
        client-side last-applied annotation."""
        args = ["apply", "--server-side", "--force-conflicts"] if server_side else ["apply"]
        for path in paths:
            self.kubectl(*args, "-f", str(path))

    def wait_crds(self, timeout: float = 60.0) -> None:
        """Wait until every CRD is Established."""
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", f"--timeout={int(timeout)}s")

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path, duration: str = "24h") -> Path:
        """A kubeconfig holding a fresh token (TokenRequest) of the ServiceAccount ``namespace/name``."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        return write_kubeconfig(path, self.url, self.ca, {"token": token}, namespace=namespace)

    def stop(self) -> None:
        """End every process this control plane started, the last started first."""
        for proc in reversed(self.processes):
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(self.grace)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait()
        self.processes.clear()
        pids = self.workdir / "pids.json"
        if pids.exists():
            pids.unlink()


def stop_recorded(workdir: Path, grace: float = 10.0) -> list[str]:
    """Stop the processes a detached ``up`` recorded in ``workdir/pids.json``; returns the names stopped.

    Only those pids are signalled, and only while their command line still names a component binary, so a pid the
    system has since reused for something else is left alone.
    """
    pids_file = workdir / "pids.json"
    if not pids_file.exists():
        return []
    pids: dict[str, int] = json.loads(pids_file.read_text())
    stopped = []
    for name, pid in reversed(list(pids.items())):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if Path(cmdline).name != name:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        stopped.append(name)
    pids_file.unlink()
    return stopped


def default_crds(gateway_crds: Path) -> list[Path]:
    """The Gateway API CRDs and flaggerpy's CRDs."""
    return [gateway_crds, REPO_ROOT / "deploy" / "crds"]


def install_rbac(plane: ControlPlane) -> None:
    """The controller's namespace, ServiceAccount and deploy/rbac (ClusterRole, Lease Role and their bindings)."""
    plane.kubectl("apply", "-f", str(REPO_ROOT / "deploy" / "namespace.yaml"))
    plane.kubectl("apply", "-n", CONTROLLER_NAMESPACE, "-k", str(REPO_ROOT / "deploy" / "rbac"))


def describe(plane: ControlPlane) -> dict[str, Any]:
    """What `up` prints: the kubeconfig, the API server URL, the logs and the state directory."""
    return {"kubeconfig": str(plane.admin_kubeconfig), "server": plane.url, "workdir": str(plane.workdir),
            "logs": str(plane.workdir / "logs")}
