"""``flaggerpy run``: the controller process (Flagger-compatible flag names where Flagger has them).

Every flag can also come from the environment (see :mod:`flaggerpy.canary.runflags`). The controller itself is
assembled by :func:`flaggerpy.canary.wiring.wired_controller`; this module adds the telemetry server and optional
leader election, then runs until SIGTERM/SIGINT. Shutdown is graceful: the workers finish the step
in flight (it is persisted in the Canary's status), the lease is released and every HTTP session is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping

from flaggerpy import __version__, heap, telemetry
from flaggerpy import log as logconf
from flaggerpy.alerts.notifier import DefaultAlerts
from flaggerpy.analysis.builtin import DEFAULT_FLAVOUR, parse_flavour
from flaggerpy.analysis.checks import DEFAULT_METRICS_SERVER, MetricSettings
from flaggerpy.analysis.providers import DEFAULT_TIMEOUT
from flaggerpy.analysis.webhooks import WebhookSettings
from flaggerpy.apis.durations import parse_duration
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import GATEWAY_PROVIDERS
from flaggerpy.canary import workload as wl
from flaggerpy.canary.controller import ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.canary.runflags import Flag, add_flags, at_least, parse_float, parse_int, parse_list, resolve
from flaggerpy.canary.settings import LeaderElection, LogSettings, Settings, TelemetrySettings
from flaggerpy.canary.wiring import WiringSettings, wired_controller
from flaggerpy.kube.errors import ConfigError
from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.settings import ClientSettings, LeaderSettings
from flaggerpy.log import get_logger
from flaggerpy.outbound import parse_allow_entry

log = get_logger(__name__)

LEASE_NAME = "flaggerpy"
ANALYSIS_DEADLINE_MARGIN = 10.0
"""Seconds the deadline of a canary's outbound work allows beyond ``--webhook-max-duration``."""


def _provider(text: str) -> str:
    if text not in GATEWAY_PROVIDERS:
        raise ValueError(f"{text!r} is not one of {', '.join(GATEWAY_PROVIDERS)}")
    return text


def _flavour(text: str) -> str:
    return str(parse_flavour(text))


def _threadiness(text: str) -> int:
    return at_least(parse_int(text), 1)


def _burst(text: str) -> int:
    return at_least(parse_int(text), 0)


def _max_canaries(text: str) -> int:
    return at_least(parse_int(text), 0)


def _port(text: str) -> int:
    port = parse_int(text)
    if not 0 < port < 65536:
        raise ValueError(f"must be between 1 and 65535, not {port}")
    return port


def _timeout(text: str) -> float:
    value = parse_float(text)
    if value <= 0:
        raise ValueError(f"must be > 0, not {value:g}")
    return value


def _log_level(text: str) -> str:
    # Flagger's zap levels (debug, info, warn, error, fatal) are all names Python's logging knows too.
    if not isinstance(logging.getLevelName(text.strip().upper()), int):
        raise ValueError(f"unknown level {text!r} (debug, info, warning, error)")
    return text.strip()


def _allow_list(text: str) -> tuple[str, ...]:
    return tuple(parse_allow_entry(entry) for entry in parse_list(text))


def _go_duration(text: str) -> float:
    """A Go duration (``10s``, ``1m30s``, ``500ms``) or plain seconds, as seconds > 0."""
    try:
        seconds = parse_duration(text.strip(), "-control-loop-interval")
    except SpecError:
        seconds = parse_float(text)
    if seconds <= 0:
        raise ValueError(f"must be > 0, not {text!r}")
    return seconds


def _encoding(text: str) -> str:
    if text.strip() not in ("json", "console"):
        raise ValueError(f"{text!r} is not json or console")
    return text.strip()


def _labels(text: str) -> str:
    if not parse_list(text):
        raise ValueError("needs at least one label")
    return text


_IGNORED = "accepted for Flagger compatibility, ignored"

FLAGS: tuple[Flag, ...] = (
    Flag("kubeconfig", None, "path to a kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)"),
    Flag("context", None, "kubeconfig context to use"),
    Flag("kubeconfig-qps", ClientSettings.qps,
         "API requests per second once the burst is spent (default 100; 0: client-go's 5; negative: no limit)",
         parse_float),
    Flag("kubeconfig-burst", ClientSettings.burst, "API requests allowed at once (default 250; 0: client-go's 10)",
         _burst),
    Flag("namespace", None, "watch canaries in this namespace only (default: all namespaces)"),
    Flag("threadiness", 2, "canaries reconciled in parallel (default 2)", _threadiness),
    Flag("log-level", "info", "debug, info, warning or error (default info)", _log_level),
    Flag("metrics-server", DEFAULT_METRICS_SERVER, "Prometheus URL for the builtin checks"),
    Flag("metrics-flavour", str(DEFAULT_FLAVOUR),
         f"metric names of the builtin checks: http (Flagger's gatewayapi queries), istio, envoy or traefik "
         f"(default {DEFAULT_FLAVOUR}; a Canary's flaggerpy.io/metrics-flavour annotation overrides it)", _flavour),
    Flag("metrics-query-timeout", DEFAULT_TIMEOUT,
         f"seconds one metric query may take (default {DEFAULT_TIMEOUT:g})", _timeout),
    Flag("mesh-provider", "gatewayapi:v1",
         f"provider of canaries without spec.provider ({', '.join(GATEWAY_PROVIDERS)})", _provider),
    Flag("selector-labels", ",".join(wl.SELECTOR_LABELS),
         f"labels that identify a workload's pods, tried in order (default {','.join(wl.SELECTOR_LABELS)})",
         _labels),
    Flag("include-label-prefix", "",
         "comma-separated prefixes of the target's labels and annotations copied to the primary workload; '*': all; "
         "empty (the default, as in Flagger): none"),
    Flag("max-concurrent-canaries", 0, "new revisions analysed at once; the rest wait in order (default 0 = unlimited)",
         _max_canaries),
    Flag("enable-config-tracking", True, "new revision on ConfigMap/Secret changes, copied to -primary (default true)",
         boolean=True),
    Flag("port", 8080, "port of /metrics, /healthz and /readyz (default 8080)", _port),
    Flag("listen-address", "0.0.0.0", "address of the telemetry server (default 0.0.0.0)"),
    Flag("enable-leader-election", False, "run as one of several replicas; one leads (default false)", boolean=True),
    Flag("leader-election-namespace", "kube-system", "namespace of the leader Lease"),
    Flag("leader-election-lease-duration", LeaderSettings.lease_duration,
         "seconds a standby waits after the leader's last renewal before taking over (default 15)", parse_float),
    Flag("leader-election-renew-deadline", LeaderSettings.renew_deadline,
         "seconds the leader keeps trying to renew before it steps down (default 10)", parse_float),
    Flag("leader-election-retry-period", LeaderSettings.retry_period,
         "seconds between acquire/renew attempts (default 2)", parse_float),
    Flag("webhook-max-duration", WebhookSettings.max_duration,
         "seconds one webhook call may take with all its retries; a Canary's timeout and retries are cut to fit "
         "(default 300)", _timeout),
    Flag("event-webhook", "", "URL receiving every canary Event", flagger_env="EVENT_WEBHOOK_URL"),
    Flag("cluster-name", "", "cluster name added to alerts"),
    Flag("outbound-allow", (), "comma-separated CIDRs and host names tenants' addresses may reach although they are "
         "link-local, cloud metadata or (in-cluster) the controller's own pod", _allow_list),
    Flag("enable-ambient-credentials", False, "stackdriver/cloudwatch templates without a Secret use the controller's "
         "own cloud identity, towards googleapis.com/amazonaws.com only (default false)", boolean=True),
    Flag("slack-url", "", "default Slack webhook for alerts; Flagger's $SLACK_URL wins"),
    Flag("slack-user", "flagger", "Slack user name of the default alerts", flagger_env="SLACK_USER"),
    Flag("slack-channel", "", "Slack channel of the default alerts", flagger_env="SLACK_CHANNEL"),
    Flag("slack-proxy-url", "", "HTTP proxy for Slack; Flagger's $SLACK_PROXY_URL wins"),
    Flag("msteams-url", "", "default MS Teams webhook for alerts; Flagger's $MSTEAMS_URL wins"),
    Flag("msteams-proxy-url", "", "HTTP proxy for MS Teams; Flagger's $MSTEAMS_PROXY_URL wins"),
    Flag("slack-token", "", "Slack bot token of the default alerts; Flagger's $SLACK_TOKEN wins"),
    Flag("control-loop-interval", 10.0, "how often every canary is looked at again besides its watch events, "
         "Flagger's sync interval (Go duration, default 10s)", _go_duration),
    Flag("zap-encoding", "json", "log encoding: json or console (default json, as Flagger)", _encoding),
    Flag("no-cross-namespace-refs", False, "refuse MetricTemplates, AlertProviders (and their Secrets) from another "
         "namespace than the Canary's (default false)", boolean=True),
    Flag("version", False, "print the version and exit", boolean=True),
    # Flagger's flags that mean nothing for a Gateway API controller: accepted, logged once as ignored.
    Flag("master", "", f"{_IGNORED}: the API server comes from the kubeconfig"),
    Flag("kubeconfig-service-mesh", "", f"{_IGNORED}: the Gateway API objects live in the cluster of --kubeconfig"),
    Flag("ingress-annotations-prefix", "nginx.ingress.kubernetes.io", f"{_IGNORED}: no NGINX ingresses are managed"),
    Flag("ingress-class", "", f"{_IGNORED}: no Contour HTTPProxies are managed"),
    Flag("zap-replace-globals", False, f"{_IGNORED}: Python has no global zap logger", boolean=True),
)

IGNORED_FLAGS = tuple(flag.name for flag in FLAGS if flag.help.startswith(_IGNORED))
"""Flags of Flagger's main.go that mean nothing for a Gateway API controller: accepted, logged once as ignored."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the flags of ``flaggerpy run`` (each also read from its environment variable, see runflags)."""
    parser.epilog = ("Every --some-flag can also be set by $FLAGGERPY_SOME_FLAG (the command line wins); "
                     "booleans take --flag, --flag=false or --no-flag; Flagger's one-dash -flag=value works too.")
    add_flags(parser, FLAGS)


def _problems(args: argparse.Namespace) -> list[str]:
    """What is wrong across flags (each flag's own value was checked when it was read)."""
    problems = []
    try:
        leader_settings_from(args)
    except ValueError as exc:
        problems.append(f"--leader-election-*: {exc}")
    try:
        alerts_from(args).target()
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def leader_settings_from(args: argparse.Namespace) -> LeaderSettings:
    """The lease timings the flags ask for; ValueError unless retry period < renew deadline < lease duration."""
    return LeaderSettings(lease_duration=args.leader_election_lease_duration,
                          renew_deadline=args.leader_election_renew_deadline,
                          retry_period=args.leader_election_retry_period)


def alerts_from(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> DefaultAlerts:
    """The default alert destination: the flags, overridden by the Flagger variables the alerts module reads
    (``SLACK_URL``, ``SLACK_TOKEN``, ``SLACK_PROXY_URL``, ``MSTEAMS_URL``, ``MSTEAMS_PROXY_URL``)."""
    return DefaultAlerts(
        slack_url=args.slack_url, slack_user=args.slack_user, slack_channel=args.slack_channel,
        slack_proxy_url=args.slack_proxy_url, slack_token=args.slack_token, msteams_url=args.msteams_url,
        msteams_proxy_url=args.msteams_proxy_url,
    ).with_environment(environ)


def settings_from(args: argparse.Namespace) -> ControllerSettings:
    """The controller settings the flags ask for."""
    return ControllerSettings(
        namespace=args.namespace,
        threadiness=args.threadiness,
        control_loop_interval=args.control_loop_interval,
        engine=EngineSettings(
            config_tracking=args.enable_config_tracking,
            max_concurrent_canaries=args.max_concurrent_canaries,
            mesh_provider=args.mesh_provider,
            selector_labels=parse_list(args.selector_labels),
            include_label_prefixes=parse_list(args.include_label_prefix),
            # A piece of a canary's outbound work is one hook type's calls (concurrent, each within the cap) or
            # the metric checks: the cap plus a margin bounds it.
            analysis_deadline=args.webhook_max_duration + ANALYSIS_DEADLINE_MARGIN,
        ),
    )


def wiring_from(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> WiringSettings:
    """Everything the controller is built from, as the flags ask."""
    return WiringSettings(
        kubeconfig=args.kubeconfig,
        context=args.context,
        client=ClientSettings(qps=args.kubeconfig_qps, burst=args.kubeconfig_burst),
        controller=settings_from(args),
        metrics=MetricSettings(metrics_server=args.metrics_server, builtin_flavour=parse_flavour(args.metrics_flavour),
                               query_timeout=args.metrics_query_timeout),
        alerts=alerts_from(args, environ),
        no_cross_namespace_refs=args.no_cross_namespace_refs,
        cluster_name=args.cluster_name,
        event_webhook=args.event_webhook,
        webhooks=WebhookSettings(max_duration=args.webhook_max_duration),
        outbound_allow=args.outbound_allow,
        ambient_credentials=args.enable_ambient_credentials,
    )


def settings_of(args: argparse.Namespace, environ: Mapping[str, str] = os.environ, *,
                encoding_given: bool = True) -> Settings:
    """The Settings root the flags (and their environment variables, already resolved into ``args``) ask for.

    ``encoding_given``: whether ``--zap-encoding`` was set at all; Flagger logs JSON unless told otherwise, but
    without the flag a terminal still gets readable lines.
    """
    return Settings(
        wiring=wiring_from(args, environ),
        leader_election=LeaderElection(enabled=args.enable_leader_election,
                                       namespace=args.leader_election_namespace, lease=leader_settings_from(args)),
        telemetry=TelemetrySettings(listen_address=args.listen_address, port=args.port),
        log=LogSettings(level=args.log_level, json=(args.zap_encoding == "json") if encoding_given else None),
    )


async def _serve(settings: Settings, stop: asyncio.Event) -> int:
    recorder = telemetry.Recorder()
    recorder.set_info(settings.wiring.controller.engine.mesh_provider)
    election = settings.leader_election
    async with wired_controller(settings.wiring, on_request=recorder.observe_api_request,
                                observer=recorder) as wired:
        controller = wired.controller
        synced = asyncio.Event()
        elector: LeaderElector | None = None
        exit_code = 0

        def ready() -> bool:
            # A standby is ready too: it has its caches and takes over the moment the lease is free.
            return synced.is_set()

        def role() -> str:
            if not election.enabled:
                return "leader"
            return "leader" if elector is not None and elector.is_leader else "standby"

        collections = heap.ScheduledCollections()
        def alive() -> bool:
            dead = controller.liveness()
            if dead:
                log.error("liveness check failing", dead=dead)
            return not dead

        wired.kube.add_undecodable_observer(recorder.count_undecodable)
        server = await telemetry.serve(recorder, telemetry.HealthChecks(alive=alive, ready=ready, role=role),
                                       settings.telemetry.listen_address, settings.telemetry.port)
        try:
            await controller.start_informers(standby=election.enabled)
            collections.start()
            synced.set()
            if election.enabled:
                lost = asyncio.Event()

                async def started() -> None:
                    recorder.leader.set(1)
                    await controller.resume_handlers()
                    controller.start_workers()

                async def stopped() -> None:
                    recorder.leader.set(0)
                    lost.set()

                elector = LeaderElector(wired.kube, LEASE_NAME, election.namespace, settings=election.lease,
                                        on_started_leading=started, on_stopped_leading=stopped)
                # From the renew deadline on, no write leaves this replica, a step in flight included (invariant 9).
                wired.kube.set_write_fence(elector.write_fence())
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
            # The steps in flight finish while this replica still holds the lease, so no other one starts early.
            await controller.stop()
            if elector is not None:
                await elector.stop()
            await server.cleanup()
            await collections.stop()
        return exit_code


async def _main(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _serve(settings, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _log_ignored(given: argparse.Namespace) -> None:
    """One line per Flagger flag that was set but means nothing here."""
    for flag in FLAGS:
        if flag.name in IGNORED_FLAGS and hasattr(given, flag.dest):
            log.info("flag ignored", flag=f"-{flag.name}", reason=flag.help)


def run(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM/SIGINT; the process exit code."""
    given = args
    args, problems = resolve(args, FLAGS, os.environ)
    if not problems:
        problems = _problems(args)
    if problems:
        for problem in problems:
            sys.stderr.write(f"flaggerpy run: {problem}\n")
        return 2
    if args.version:
        # Flagger's -version: print and exit before anything else is set up.
        sys.stdout.write(f"flaggerpy version {__version__}\n")
        return 0
    explicit = hasattr(given, "zap_encoding") or bool(os.environ.get("FLAGGERPY_ZAP_ENCODING"))
    settings = settings_of(args, encoding_given=explicit)
    try:
        logconf.configure(settings.log.level, json=settings.log.json)
    except ValueError as exc:
        sys.stderr.write(f"flaggerpy run: {exc}\n")
        return 2
    _log_ignored(given)
    try:
        return asyncio.run(_main(settings))
    except ConfigError as exc:
        log.error("cannot connect to the cluster", error=str(exc))
        return 1
