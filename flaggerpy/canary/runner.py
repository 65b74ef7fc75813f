"""``flaggerpy run``: the controller process (Flagger-compatible flag names where Flagger has them).

Builds the shared KubeClient, the informers, the real analysis (metrics + webhooks) and alerting, the telemetry
server, optional leader election, then runs until SIGTERM/SIGINT. Shutdown is graceful: the workers finish the step
in flight (it is persisted in the Canary's status), the lease is released and every HTTP session is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Mapping
from typing import Any

from flaggerpy import log as logconf
from flaggerpy import telemetry
from flaggerpy.alerts.notifier import AlertNotifier, DefaultAlerts
from flaggerpy.analysis.analyzer import CanaryAnalyzer
from flaggerpy.analysis.checks import DEFAULT_METRICS_SERVER, MetricChecker, MetricSettings
from flaggerpy.analysis.webhooks import WebhookRunner
from flaggerpy.apis.flagger import GATEWAY_PROVIDERS, Canary
from flaggerpy.canary.cache import Caches
from flaggerpy.canary.controller import Controller, ControllerSettings, build_informers
from flaggerpy.canary.events import EngineEvents
from flaggerpy.canary.lookup import CacheLookup
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import ConfigError
from flaggerpy.kube.events import EventRecorder
from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.settings import LeaderSettings
from flaggerpy.log import get_logger

log = get_logger(__name__)

LEASE_NAME = "flaggerpy"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the flags of ``flaggerpy run``."""
    add = parser.add_argument
    add("--kubeconfig", help="path to a kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
    add("--context", help="kubeconfig context to use")
    add("--namespace", default=None, help="watch canaries in this namespace only (default: all namespaces)")
    add("--threadiness", type=int, default=2, help="canaries reconciled in parallel (default 2)")
    add("--log-level", default="info", help="debug, info, warning or error (default info)")
    add("--metrics-server", default=DEFAULT_METRICS_SERVER, help="Prometheus URL for the builtin checks")
    add("--mesh-provider", default="gatewayapi:v1",
        help=f"provider of canaries without spec.provider ({', '.join(GATEWAY_PROVIDERS)})")
    add("--max-concurrent-canaries", type=int, default=0,
        help="new revisions analysed at once; the rest wait in order (default 0 = unlimited)")
    add("--enable-config-tracking", action=argparse.BooleanOptionalAction, default=True,
        help="new revision on ConfigMap/Secret changes, copied to -primary (default on)")
    add("--port", type=int, default=8080, help="port of /metrics, /healthz and /readyz (default 8080)")
    add("--listen-address", default="0.0.0.0", help="address of the telemetry server (default 0.0.0.0)")
    add("--enable-leader-election", action="store_true", help="run as one of several replicas; one leads")
    add("--leader-election-namespace", default="kube-system", help="namespace of the leader Lease")
    add("--leader-election-lease-duration", type=float, default=LeaderSettings.lease_duration,
        help="seconds a standby waits after the leader's last renewal before taking over (default 15)")
    add("--leader-election-renew-deadline", type=float, default=LeaderSettings.renew_deadline,
        help="seconds the leader keeps trying to renew before it steps down (default 10)")
    add("--leader-election-retry-period", type=float, default=LeaderSettings.retry_period,
        help="seconds between acquire/renew attempts (default 2)")
    add("--event-webhook", default="", help="URL receiving every canary Event (Flagger's -event-webhook)")
    add("--cluster-name", default="", help="cluster name added to alerts")
    add("--slack-url", default="", help="default Slack webhook for alerts")
    add("--slack-user", default="flagger", help="Slack user name of the default alerts")
    add("--slack-channel", default="", help="Slack channel of the default alerts")
    add("--slack-proxy-url", default="", help="HTTP proxy for Slack")
    add("--msteams-url", default="", help="default MS Teams webhook for alerts")
    add("--msteams-proxy-url", default="", help="HTTP proxy for MS Teams")


def _problems(args: argparse.Namespace) -> list[str]:
    problems = []
    if args.threadiness < 1:
        problems.append(f"--threadiness: must be >= 1, not {args.threadiness}")
    if args.max_concurrent_canaries < 0:
        problems.append(f"--max-concurrent-canaries: must be >= 0, not {args.max_concurrent_canaries}")
    if args.mesh_provider not in GATEWAY_PROVIDERS:
        problems.append(f"--mesh-provider: {args.mesh_provider!r} is not one of {', '.join(GATEWAY_PROVIDERS)}")
    if not 0 < args.port < 65536:
        problems.append(f"--port: must be between 1 and 65535, not {args.port}")
    try:
        leader_settings_from(args)
    except ValueError as exc:
        problems.append(f"--leader-election-*: {exc}")
    return problems


def leader_settings_from(args: argparse.Namespace) -> LeaderSettings:
    """The lease timings the flags ask for; ValueError unless retry period < renew deadline < lease duration."""
    return LeaderSettings(lease_duration=args.leader_election_lease_duration,
                          renew_deadline=args.leader_election_renew_deadline,
                          retry_period=args.leader_election_retry_period)


def settings_from(args: argparse.Namespace) -> ControllerSettings:
    """The controller settings the flags ask for."""
    return ControllerSettings(
        namespace=args.namespace,
        threadiness=args.threadiness,
        engine=EngineSettings(
            config_tracking=args.enable_config_tracking,
            max_concurrent_canaries=args.max_concurrent_canaries,
            mesh_provider=args.mesh_provider,
        ),
    )


def _publish(recorder: telemetry.Recorder) -> Any:
    def on_status(canary: Canary, status: Mapping[str, Any]) -> None:
        target, namespace = canary.spec.target_ref.name, canary.metadata.namespace
        weight = int(status.get("canaryWeight") or 0)
        recorder.set_status(target, namespace, str(status.get("phase") or ""))
        recorder.set_weight(target, namespace, 100 - weight, weight)
        # The history is oldest first: the last sample of each metric is its current value.
        for sample in status.get("metricHistory") or []:
            if sample.get("value") is not None:
                recorder.set_metric(target, namespace, str(sample.get("name")), float(sample["value"]))

    return on_status


async def _serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    settings = settings_from(args)
    recorder = telemetry.Recorder()
    recorder.set_info(args.mesh_provider)
    async with KubeClient(args.kubeconfig, args.context, on_request=recorder.observe_api_request) as kube:
        informers = build_informers(kube, settings)
        lookup = CacheLookup(Caches({r: i.store for r, i in informers.items()}), kube)
        webhooks = WebhookRunner(event_webhook=args.event_webhook or None)
        metrics = MetricChecker(lookup, MetricSettings(metrics_server=args.metrics_server))
        notifier = AlertNotifier(lookup, cluster_name=args.cluster_name, defaults=DefaultAlerts(
            slack_url=args.slack_url, slack_user=args.slack_user, slack_channel=args.slack_channel,
            slack_proxy_url=args.slack_proxy_url, msteams_url=args.msteams_url,
            msteams_proxy_url=args.msteams_proxy_url,
        ))
        events = EngineEvents(EventRecorder(kube), webhooks)
        controller = Controller(kube, CanaryAnalyzer(metrics, webhooks), notifier, events, settings,
                                informers=informers, on_status=_publish(recorder))
        synced = asyncio.Event()
        elector: LeaderElector | None = None
        exit_code = 0

        def ready() -> bool:
            # A standby is ready too: it has its caches and takes over the moment the lease is free.
            return synced.is_set()

        server = await telemetry.serve(recorder, telemetry.HealthChecks(ready=ready), args.listen_address,
                                       args.port)
        try:
            await controller.start_informers()
            synced.set()
            if args.enable_leader_election:
                lost = asyncio.Event()

                async def started() -> None:
                    recorder.leader.set(1)
                    controller.start_workers()

                async def stopped() -> None:
                    recorder.leader.set(0)
                    lost.set()

                elector = LeaderElector(kube, LEASE_NAME, args.leader_election_namespace,
                                        settings=leader_settings_from(args),
                                        on_started_leading=started, on_stopped_leading=stopped)
                elector.start()
                waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if lost.is_set() and not stop.is_set():
                    # Like Flagger: a replica that lost the lease exits and lets Kubernetes restart it clean.
                    log.error("leadership lost; exiting")
                    exit_code = 1
            else:
                controller.start_workers()
                await stop.wait()
        finally:
            log.info("shutting down: finishing the steps in flight")
            await controller.stop()
            if elector is not None:
                await elector.stop()
            await asyncio.gather(webhooks.close(), metrics.close(), notifier.close())
            await server.cleanup()
        return exit_code


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _serve(args, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM/SIGINT; the process exit code."""
    problems = _problems(args)
    if problems:
        for problem in problems:
            sys.stderr.write(f"flaggerpy run: {problem}\n")
        return 2
    try:
        logconf.configure(args.log_level)
    except ValueError as exc:
        sys.stderr.write(f"flaggerpy run: {exc}\n")
        return 2
    try:
        return asyncio.run(_main(args))
    except ConfigError as exc:
        log.error("cannot connect to the cluster", error=str(exc))
        return 1
