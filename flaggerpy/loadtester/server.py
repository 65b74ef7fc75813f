"""The aiohttp application: flagger-loadtester's HTTP API.

``POST /`` runs ``metadata.cmd``: type ``cmd`` (default) in the background via ``sh -c`` and answers 202 at once;
type ``bash`` via ``bash -c``, and ``kubectl``/``helm``/``helmv3`` by executing that binary, all blocking, answering
200 on exit code 0 and 500 otherwise (with the output tail). The gate endpoints keep manual approvals per canary.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable

from aiohttp import web

from flaggerpy.loadtester.background import BackgroundRunner
from flaggerpy.loadtester.commands import CommandResult, run_command
from flaggerpy.loadtester.config import LoadtesterConfig
from flaggerpy.loadtester.gates import GateKind, GateStore
from flaggerpy.loadtester.payload import PayloadError, WebhookPayload, parse_bool, parse_payload
from flaggerpy.log import get_logger

_log = get_logger("flaggerpy.loadtester.server")

CONFIG = web.AppKey("config", LoadtesterConfig)
RUNNER = web.AppKey("runner", BackgroundRunner)
GATES = web.AppKey("gates", GateStore)

BACKGROUND_TYPE = "cmd"
# Blocking task types and how each turns metadata.cmd into argv. kubectl and helm take arguments only,
# as in flagger-loadtester: the binary is fixed, so a payload cannot run anything else through them.
_BLOCKING: dict[str, Callable[[str], list[str]]] = {
    "bash": lambda cmd: ["bash", "-c", cmd],
    "kubectl": lambda cmd: ["kubectl", *shlex.split(cmd)],
    "helm": lambda cmd: ["helm", *shlex.split(cmd)],
    "helmv3": lambda cmd: ["helm", *shlex.split(cmd)],
}
TASK_TYPES = (BACKGROUND_TYPE, *_BLOCKING)

Handler = Callable[[web.Request, WebhookPayload], Awaitable[web.Response]]


def _authorized(config: LoadtesterConfig, payload: WebhookPayload) -> bool:
    return config.namespace_regexp is None or config.namespace_regexp.search(payload.namespace) is not None


def _with_payload(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Parse the payload (400 when malformed) and enforce ``--namespace-regexp`` (403) before ``handler``."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            payload = parse_payload(await request.read())
        except PayloadError as exc:
            return web.Response(status=400, text=f"invalid payload: {exc}\n")
        if not _authorized(request.app[CONFIG], payload):
            _log.warning("request refused by --namespace-regexp", canary=payload.canary, path=request.path)
            return web.Response(
                status=403, text=f"Forbidden: namespace {payload.namespace!r} is not allowed on this load tester\n"
            )
        return await handler(request, payload)

    return wrapped


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="OK")


async def _approve(_: web.Request) -> web.Response:
    return web.Response(text="OK")


async def _halt(_: web.Request) -> web.Response:
    return web.Response(status=403, text="Forbidden")


def _gate_check(kind: GateKind) -> Handler:
    async def check(request: web.Request, payload: WebhookPayload) -> web.Response:
        approved = request.app[GATES].is_open(kind, payload.name, payload.namespace)
        _log.info(f"{kind} check", canary=payload.canary, approved=approved)
        if approved:
            return web.Response(text="Approved")
        return web.Response(status=403, text="Forbidden")

    return check


def _gate_set(kind: GateKind, open_: bool) -> Handler:
    async def change(request: web.Request, payload: WebhookPayload) -> web.Response:
        gates = request.app[GATES]
        if open_:
            gates.open(kind, payload.name, payload.namespace)
        else:
            gates.close(kind, payload.name, payload.namespace)
        state = "opened" if open_ else "closed"
        _log.info(f"{kind} {state}", canary=payload.canary)
        return web.Response(status=202, text=f"{kind} {state} for {payload.canary}\n")

    return change


def _blocking_answer(command: str, result: CommandResult, return_output: bool) -> web.Response:
    if result.ok:
        return web.Response(text=result.output if return_output else "")
    return web.Response(status=500, text=f"command {command!r} failed: {result.describe()}\n{result.output}")


async def _task(request: web.Request, payload: WebhookPayload) -> web.Response:
    config = request.app[CONFIG]
    metadata = payload.metadata
    if not metadata:
        return web.Response(status=400, text="metadata not found in payload\n")
    task_type = metadata.get("type", BACKGROUND_TYPE)
    command = metadata.get("cmd", "")
    try:
        if task_type not in TASK_TYPES:
            raise PayloadError(f"metadata.type: unknown task type {task_type!r} (one of {', '.join(TASK_TYPES)})")
        if not command.strip():
            raise PayloadError("metadata.cmd: required")
        log_output = parse_bool(metadata.get("logCmdOutput", str(config.log_cmd_output)), "metadata.logCmdOutput")
        return_output = parse_bool(metadata.get("returnCmdOutput", "false"), "metadata.returnCmdOutput")
        argv = [] if task_type == BACKGROUND_TYPE else _BLOCKING[task_type](command)
    except (PayloadError, ValueError) as exc:
        return web.Response(status=400, text=f"invalid payload: {exc}\n")

    if task_type == BACKGROUND_TYPE:
        started = request.app[RUNNER].submit(payload.canary, command, log_output)
        return web.Response(status=202, text="started\n" if started else "already running\n")

    _log.info("blocking command starting", canary=payload.canary, type=task_type, command=command)
    result = await run_command(
        argv, time_limit=config.timeout, max_output=config.max_output_bytes, kill_grace=config.kill_grace
    )
    # Blocking commands always log their output, as flagger-loadtester does: they are the ones a user debugs.
    log = _log.info if result.ok else _log.error
    log(
        "blocking command finished",
        canary=payload.canary,
        command=command,
        result=result.describe(),
        output=result.output,
    )
    return _blocking_answer(command, result, return_output)


async def _stop_commands(app: web.Application) -> None:
    await app[RUNNER].close()


def create_app(config: LoadtesterConfig) -> web.Application:
    """Build the load tester application; its cleanup kills every command still running."""
    app = web.Application(client_max_size=config.max_request_bytes)
    app[CONFIG] = config
    app[RUNNER] = BackgroundRunner(config)
    app[GATES] = GateStore()
    app.router.add_route("*", "/healthz", _healthz)
    app.router.add_route("*", "/gate/approve", _approve)
    app.router.add_route("*", "/gate/halt", _halt)
    for kind in GateKind:
        app.router.add_route("*", f"/{kind}/check", _with_payload(_gate_check(kind)))
        app.router.add_route("*", f"/{kind}/open", _with_payload(_gate_set(kind, True)))
        app.router.add_route("*", f"/{kind}/close", _with_payload(_gate_set(kind, False)))
    app.router.add_post("/", _with_payload(_task))
    app.on_cleanup.append(_stop_commands)
    return app
