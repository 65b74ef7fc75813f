"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against the sandbox and a real controller.

What a user would notice: the list loads with every canary they may see; a release is followed live from start to
Succeeded on the canary's page; Abort asks for confirmation naming the canary and the page shows the rollback; a
user without rights sees the 403 and no canary of another tenant's namespace. Each page is screenshotted into a
temporary directory (printed) for a person to look at. Accessibility: keyboard-only sorting and navigation,
visible focus, text contrast computed in the page against WCAG AA.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flaggerpy.analysis.base import HookType, StepContext, WebhookResult
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller
from flaggerpy.canary.events import EngineEvents
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.dashboard.hub import HubSettings
from flaggerpy.dashboard.server import DashboardSettings, Running, serve
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.events import EventRecorder
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, RecordingNotifier, ScriptedAnalyzer, controller_settings, wait_for
from tests.manifests import canary, deployment

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip extra 'browser')")
expect = playwright_api.expect
CHROMIUM = os.environ.get("FLAGGERPY_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
OTHER = "tenant-b"
# Polling is the browser's: these bound how long a page may take to show what the cluster already says.
SHOWN = 20_000


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (FLAGGERPY_SCREENSHOTS, else a temporary directory); printed for a person."""
    chosen = os.environ.get("FLAGGERPY_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots in {path}")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium from the system (never a Playwright browser download)."""
    async with playwright_api.async_playwright() as pw:
        # Root (CI containers) cannot use Chromium's sandbox; a small /dev/shm must not crash the renderer.
        args = ["--disable-dev-shm-usage", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
        instance = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield instance
        finally:
            await instance.close()


@dataclass
class HookedAnalyzer(ScriptedAnalyzer):
    """The scripted analyzer, with the canary's ``load-test`` rollout hook answering 200 at every step."""

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        if hook_type is HookType.ROLLOUT:
            return [WebhookResult("load-test", hook_type, True, status_code=200)]
        return await super().run_webhooks(canary, hook_type, step)


@pytest.fixture
def analyzer() -> ScriptedAnalyzer:
    """The analyzer the controllers of these tests use."""
    return HookedAnalyzer()


@contextlib.asynccontextmanager
async def controller(sandbox: Sandbox, analyzer: ScriptedAnalyzer) -> AsyncIterator[Controller]:
    """A controller that records real Kubernetes Events (the dashboard reads them back from the cluster)."""
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        ctl = Controller(kube, analyzer, RecordingNotifier(), EngineEvents(EventRecorder(kube)),
                         controller_settings(EngineSettings(poll_interval=0.2)))
        await ctl.start()
        try:
            yield ctl
        finally:
            await ctl.stop()


def dashboard(kubeconfig: Path, **options: Any) -> contextlib.AbstractAsyncContextManager[Running]:
    """The dashboard on a free port, flushing changes quickly."""
    return serve(DashboardSettings(kubeconfig=str(kubeconfig), port=0, hub=HubSettings(flush_interval=0.05),
                                   **options))


async def arrange(cluster: Cluster, interval: str = "1s") -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": interval, "threshold": 2, "maxWeight": 50, "stepWeight": 10,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}],
        "webhooks": [{"name": "load-test", "type": "rollout", "url": "http://loadtester.test/?token=hidden"}],
    }))


async def other_tenant(cluster: Cluster) -> None:
    """A second namespace with its own canary, which a user bound only to ``test`` must never see."""
    await cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER}})
    await cluster.create("apps", "deployments", deployment("secret-app", namespace=OTHER))
    await cluster.create("flagger.app", "canaries", canary("secret-app", namespace=OTHER))


# Records what the canary page shows each time it changes: phase and weight, in order.
RECORD = """() => {
  window.__seen = [];
  const note = () => {
    const phase = document.querySelector('#s-phase .badge');
    const weight = document.querySelector('#s-weight');
    if (!phase || !weight) return;
    const entry = phase.dataset.phase + ' ' + weight.textContent;
    if (window.__seen[window.__seen.length - 1] !== entry) window.__seen.push(entry);
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
  note();
}"""

# WCAG 2 contrast of every visible text node against its nearest opaque background; returns the failures.
CONTRAST = """() => {
  const lum = (rgb) => {
    const c = rgb.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const parse = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const background = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!t.textContent.trim() || !el || !el.offsetParent || el.closest('svg')) continue;
    const fg = parse(getComputedStyle(el).color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) bad.push(`${ratio.toFixed(2)} "${t.textContent.trim().slice(0, 40)}"`);
  }
  return bad;
}"""


async def test_list_and_a_live_release_to_succeeded(
    sandbox: Sandbox, cluster: Cluster, analyzer: ScriptedAnalyzer, browser: Any, shots: Path,
) -> None:
    await arrange(cluster)
    await other_tenant(cluster)
    async with controller(sandbox, analyzer), dashboard(sandbox.kubeconfig_path) as dash:
        await cluster.wait_phase("Initialized")
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        # Self-contained: every request the page makes goes to the dashboard itself.
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(dash.url + "/")
        rows = page.locator("#canaries tbody tr")
        await rows.first.wait_for(timeout=SHOWN)
        await expect(rows).to_have_count(2, timeout=SHOWN)
        assert await page.locator("#canaries tbody tr[data-key='test/podinfo'] .badge").inner_text() == "Initialized"
        assert await page.evaluate(CONTRAST) == []
        await page.screenshot(path=str(shots / "list.png"), full_page=True)

        # Keyboard only: sort by namespace both ways, then open the canary by its link.
        header = page.locator("th[data-key='namespace'] button")
        await header.focus()
        await page.keyboard.press("Enter")
        assert await page.locator("th[data-key='namespace']").get_attribute("aria-sort") == "ascending"
        assert await rows.first.get_attribute("data-key") == f"{OTHER}/secret-app"
        await page.keyboard.press("Enter")
        assert await page.locator("th[data-key='namespace']").get_attribute("aria-sort") == "descending"
        assert await rows.first.get_attribute("data-key") == "test/podinfo"
        outline = await header.evaluate("b => `${getComputedStyle(b).outlineStyle} ${getComputedStyle(b).outlineWidth}`"
                                        )
        assert outline.startswith("solid") and outline != "solid 0px", outline
        await page.fill("#f-text", "podinfo")
        await expect(rows).to_have_count(1)
        link = page.locator("a[href='#/canary/test/podinfo']")
        await link.focus()
        await page.keyboard.press("Enter")
        await page.locator("#s-phase .badge").wait_for(timeout=SHOWN)
        await page.evaluate(RECORD)

        await cluster.set_image(NEW_IMAGE)
        # One failed check at weight 20 (below the threshold of 2): the release halts once, then goes on.
        await wait_for(lambda: cluster.status().get("canaryWeight") == 20, 20)
        analyzer.metrics_pass = False
        await wait_for(lambda: cluster.status().get("failedChecks") == 1, 20)
        analyzer.metrics_pass = True
        await page.locator("#s-phase .badge[data-phase='Succeeded']").wait_for(timeout=60_000)
        seen: list[str] = await page.evaluate("window.__seen")
        phases = [s.split()[0] for s in seen]
        weights = [int(s.split()[1].rstrip("%")) for s in seen if s.startswith("Progressing")]
        assert phases[0] == "Initialized" and phases[-1] == "Succeeded" and "Progressing" in phases, seen
        assert weights == sorted(weights) and {10, 50} <= set(weights), seen
        # The timeline chart and its table show the steps; the metric chart has a value per step.
        steps = await page.locator("#h-timeline ~ details tbody tr").all_inner_texts()
        assert any("50%" in s for s in steps) and any("10%" in s for s in steps), steps
        assert await page.locator("#wchart-t").count() == 1
        chart = page.locator("figure[data-metric='request-success-rate'] svg")
        assert await chart.locator("circle.pass").count() >= 5 and await chart.locator("path.fail").count() == 1
        assert "1 outside the accepted range" in await chart.locator("desc").text_content()
        events = await page.locator("#h-events ~ .scroll table tbody").inner_text()
        assert "Promotion completed!" in events and "New revision detected" in events
        hooks = await page.locator("#h-hooks ~ .scroll table").inner_text()
        assert "http://loadtester.test/" in hooks and "hidden" not in hooks
        calls = len(cluster.status()["webhookHistory"])
        assert calls >= 5 and f"{calls} calls, 0 failed; last" in hooks and "passed (HTTP 200)" in hooks, hooks
        revisions = await page.locator("#h-rev ~ .scroll table").inner_text()
        assert NEW_IMAGE in revisions
        assert "Accepted" in await page.locator("#h-route ~ .scroll table").inner_text()
        assert await page.evaluate(CONTRAST) == []
        await page.screenshot(path=str(shots / "canary-succeeded.png"), full_page=True)
        # Reflow: on a narrow window only the tables scroll, never the page.
        await page.set_viewport_size({"width": 480, "height": 900})
        assert await page.evaluate("document.documentElement.scrollWidth") <= 480
        await page.screenshot(path=str(shots / "canary-narrow.png"))
        assert requested and all(url.startswith(dash.url + "/") for url in requested), requested


async def test_abort_shows_the_rollback(
    sandbox: Sandbox, cluster: Cluster, analyzer: ScriptedAnalyzer, browser: Any, shots: Path,
) -> None:
    # A long interval holds the release at its first step while we abort it.
    await arrange(cluster, interval="1h")
    async with controller(sandbox, analyzer), dashboard(sandbox.kubeconfig_path) as dash:
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("canaryWeight") == 10, 20)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(dash.canary_url("test", "podinfo"))
        await expect(page.locator("#s-weight")).to_have_text("10%", timeout=SHOWN)
        # Escape cancels the confirmation and gives the focus back to the button.
        await page.focus("#act-abort")
        await page.keyboard.press("Enter")
        dialog = page.locator("#confirm")
        await expect(dialog).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#act-abort")).to_be_focused()
        assert cluster.status().get("phase") == "Progressing"
        await page.click("#act-abort")
        assert "test/podinfo" in await dialog.locator("h2").inner_text()
        await page.screenshot(path=str(shots / "canary-abort-confirm.png"))
        await dialog.locator("#confirm-ok").click()
        await page.locator("#s-phase .badge[data-phase='Failed']").wait_for(timeout=SHOWN)
        await expect(page.locator("#s-weight")).to_have_text("0%", timeout=SHOWN)
        assert "abort requested" in await page.locator("#action-result").inner_text()
        await expect(page.locator("#h-events ~ .scroll table tbody")).to_contain_text("manual abort requested",
                                                                              timeout=SHOWN)
        assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
        # The retry button is offered for a Failed canary, abort no longer.
        assert await page.locator("#act-retry").is_enabled() and not await page.locator("#act-abort").is_enabled()
        await page.screenshot(path=str(shots / "canary-aborted.png"), full_page=True)


VIEWER_RULES = [{"apiGroups": ["flagger.app"], "resources": ["canaries"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]}]


async def test_a_user_without_rights_sees_the_403_and_only_their_namespace(
    sandbox: Sandbox, cluster: Cluster, analyzer: ScriptedAnalyzer, browser: Any, shots: Path, tmp_path: Path,
) -> None:
    await arrange(cluster, interval="1h")
    await other_tenant(cluster)
    await cluster.create("rbac.authorization.k8s.io", "roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "canary-viewer", "namespace": "test"}, "rules": copy.deepcopy(VIEWER_RULES)})
    await cluster.create("rbac.authorization.k8s.io", "rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "viewer", "namespace": "test"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "canary-viewer"},
        "subjects": [{"kind": "User", "name": "viewer"}]})
    viewer = sandbox.user_kubeconfig(tmp_path / "viewer", "viewer-token", "viewer", namespace="test")
    async with controller(sandbox, analyzer), dashboard(viewer) as dash:
        await cluster.roll_out(NEW_IMAGE)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(dash.url + "/")
        await page.locator("#canaries tbody tr").first.wait_for(timeout=SHOWN)
        assert await page.locator("#canaries tbody tr").all_inner_texts() != []
        keys = [await r.get_attribute("data-key") for r in await page.locator("#canaries tbody tr").all()]
        assert keys == ["test/podinfo"]
        assert "not allowed to list canaries in all namespaces" in await page.locator("#scope").inner_text()
        assert OTHER not in await page.content()
        await page.screenshot(path=str(shots / "list-viewer.png"), full_page=True)

        await page.goto(dash.canary_url("test", "podinfo"))
        await expect(page.locator("#s-weight")).to_have_text("10%", timeout=SHOWN)
        await page.click("#act-abort")
        await page.locator("#confirm-ok").click()
        alert = page.locator("#action-result[role='alert']")
        await alert.wait_for(timeout=SHOWN)
        text = await alert.inner_text()
        assert text.startswith("Forbidden (403)") and 'User "viewer" cannot patch resource "canaries"' in text, text
        assert cluster.status().get("phase") == "Progressing"
        await page.screenshot(path=str(shots / "canary-forbidden.png"), full_page=True)

        # Another tenant's canary page says nothing about it.
        await page.goto(dash.canary_url(OTHER, "secret-app"))
        await page.locator("#canary-body .notice").wait_for(timeout=SHOWN)
        assert "does not exist (or you may not see it)" in await page.locator("#canary-body").inner_text()


async def test_read_only_hides_the_actions(sandbox: Sandbox, cluster: Cluster, browser: Any) -> None:
    await arrange(cluster)
    async with dashboard(sandbox.kubeconfig_path, read_only=True) as dash:
        page = await browser.new_page()
        await page.goto(dash.canary_url("test", "podinfo"))
        await page.locator("#s-phase").wait_for(timeout=SHOWN)
        assert await page.locator(".actions button").count() == 0
        assert "Read-only" in await page.locator("#canary-body").inner_text()
        answer = await page.evaluate("""async () => (await fetch('/api/canaries/test/podinfo/abort',
            {method: 'POST', headers: {'X-Dashboard-Token': 'x'}})).status""")
        assert answer == 403


async def test_a_watch_that_stops_following_the_cluster_is_said_on_the_page(
    sandbox: Sandbox, cluster: Cluster, browser: Any, shots: Path, tmp_path: Path,
) -> None:
    await arrange(cluster)
    rules = [r for r in VIEWER_RULES if r["resources"] != ["events"]]
    rules.append({"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]})
    await cluster.create("rbac.authorization.k8s.io", "clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "no-event-watch"},
        "rules": rules})
    await cluster.create("rbac.authorization.k8s.io", "clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "no-event-watch"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "no-event-watch"},
        "subjects": [{"kind": "User", "name": "lister"}]})
    kubeconfig = sandbox.user_kubeconfig(tmp_path / "lister", "lister-token", "lister", namespace="test")
    async with dashboard(kubeconfig) as dash:
        page = await browser.new_page(viewport={"width": 1280, "height": 600})
        await page.goto(dash.url + "/")
        await expect(page.locator("#health")).to_contain_text("Not live: events (all namespaces: the API server "
                                                              "refused the watch", timeout=SHOWN)
        await page.screenshot(path=str(shots / "list-not-live.png"))
