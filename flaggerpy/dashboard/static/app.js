// flaggerpy dashboard: the Canaries list and one canary's page, kept live by Server-Sent Events.
"use strict";

const CONFIG = JSON.parse(document.querySelector('meta[name="dashboard-config"]').content);
const PAGE_SIZE = 50;
const main = document.getElementById("main");
const conn = document.getElementById("conn");

// -- small DOM helpers (text always goes in as text, never as HTML) ---------------------------------------------
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function age(since) {
  if (!since) return "-";
  let s = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const parts = [];
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "m"]]) {
    if (s >= size) { parts.push(`${Math.floor(s / size)}${unit}`); s %= size; }
    if (parts.length === 2) break;
  }
  if (parts.length < 2) parts.push(`${s}s`);
  return parts.join(" ");
}

function badge(phase, suspended) {
  const text = suspended ? `${phase} (paused)` : phase;
  return h("span", { class: `badge phase-${suspended ? "Paused" : phase}`, "data-phase": phase }, text);
}

function weightBar(weight) {
  return h("span", {},
    h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: null, "data-w": weight })),
    `${weight}%`);
}

// CSP forbids inline style attributes set from markup; widths are set through the CSSOM instead.
function applyWidths(root) {
  for (const s of root.querySelectorAll("[data-w]")) s.style.width = `${Math.min(100, Number(s.dataset.w))}%`;
}

function fails(row) {
  const text = row.threshold === null ? `${row.failedChecks}` : `${row.failedChecks} / ${row.threshold}`;
  return h("span", { class: row.failedChecks > 0 ? "fails" : null }, text);
}

function setConn(live, text) {
  conn.className = `conn ${live ? "live" : "down"}`;
  conn.textContent = text;
}

// -- the watches behind the page: a banner while one is not following the cluster (after 3 s: a blip is no news) --
let healthTimer = null;
function setHealth(health) {
  clearTimeout(healthTimer);
  const node = document.getElementById("health");
  const entries = Object.entries(health || {});
  if (!entries.length) { node.replaceChildren(); return; }
  healthTimer = setTimeout(() => node.replaceChildren(h("p", { class: "notice" },
    "Not live: ", entries.map(([plural, why]) => `${plural} (${why})`).join("; "),
    ". What is shown may be out of date.")), 3000);
}

// -- streams -----------------------------------------------------------------------------------------------------
let source = null;
function stream(path, handlers) {
  if (source) source.close();
  source = new EventSource(path);
  source.onopen = () => setConn(true, "connected");
  source.onerror = () => setConn(false, "reconnecting…");
  source.addEventListener("health", (ev) => setHealth(JSON.parse(ev.data)));
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
  }
}

// -- the Canaries list -------------------------------------------------------------------------------------------
const list = {
  rows: new Map(), scope: null, ns: "", phase: "", text: "", sort: "name", dir: 1, page: 0, pending: false,
};
const COLUMNS = [
  ["name", "Canary"], ["namespace", "Namespace"], ["phase", "Phase"], ["weight", "Weight"],
  ["progress", "Progress"], ["iterations", "Iteration"], ["failedChecks", "Failed checks"], ["since", "In phase"], ["message", "Last Event"],
];

function sortValue(row, key) {
  if (key === "progress") return row.progress ? row.progress.done / (row.progress.total || 1) : -1;
  if (key === "since") return row.lastTransitionTime ? -Date.parse(row.lastTransitionTime) : -Infinity;
  return row[key];
}

function filtered() {
  const text = list.text.trim().toLowerCase();
  const rows = [...list.rows.values()].filter((r) =>
    (!list.ns || r.namespace === list.ns) && (!list.phase || r.phase === list.phase) &&
    (!text || `${r.namespace}/${r.name} ${r.message}`.toLowerCase().includes(text)));
  rows.sort((a, b) => {
    const x = sortValue(a, list.sort), y = sortValue(b, list.sort);
    if (x < y) return -list.dir;
    if (x > y) return list.dir;
    return a.key < b.key ? -1 : 1;
  });
  return rows;
}

function options(select, values, current, all) {
  const keep = [...select.options].map((o) => o.value).join("\n");
  const want = ["", ...values].join("\n");
  if (keep === want) return;
  select.replaceChildren(h("option", { value: "" }, all),
    ...values.map((v) => h("option", { value: v, selected: v === current }, v)));
}

function renderList() {
  list.pending = false;
  const root = document.getElementById("canaries");
  if (!root) return;
  const rows = filtered();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  list.page = Math.min(list.page, pages - 1);
  const shown = rows.slice(list.page * PAGE_SIZE, (list.page + 1) * PAGE_SIZE);
  const all = [...list.rows.values()];
  options(document.getElementById("f-ns"), [...new Set(all.map((r) => r.namespace))].sort(), list.ns, "All namespaces");
  options(document.getElementById("f-phase"), [...new Set(all.map((r) => r.phase))].sort(), list.phase, "All phases");
  for (const th of root.querySelectorAll("th[data-key]")) {
    th.setAttribute("aria-sort", th.dataset.key === list.sort ? (list.dir > 0 ? "ascending" : "descending") : "none");
  }
  const body = root.querySelector("tbody");
  body.replaceChildren(...shown.map((r) => h("tr", { "data-key": r.key },
    h("td", {}, h("a", { href: `#/canary/${r.namespace}/${r.name}` }, r.name)),
    h("td", {}, r.namespace),
    h("td", {}, badge(r.phase, r.suspended)),
    h("td", { class: "num" }, weightBar(r.weight)),
    h("td", { class: "num" }, r.progress ? `${r.progress.done}/${r.progress.total} ${r.progress.unit}s` : "-"),
    h("td", { class: "num" }, String(r.iterations)),
    h("td", { class: "num" }, fails(r)),
    h("td", { class: "num", "data-since": r.lastTransitionTime || "" }, age(r.lastTransitionTime)),
    h("td", { class: "msg" }, r.message || ""))));
  applyWidths(body);
  document.getElementById("count").textContent =
    `${rows.length} of ${list.rows.size} canaries` + (rows.length ? `, page ${list.page + 1} of ${pages}` : "");
  document.getElementById("prev").disabled = list.page === 0;
  document.getElementById("next").disabled = list.page >= pages - 1;
  const empty = document.getElementById("empty");
  empty.hidden = rows.length > 0;
  // For hack/bench_dashboard.py: when the first rows were on screen (a User Timing mark costs nothing else).
  if (shown.length && !performance.getEntriesByName("list-rendered").length) performance.mark("list-rendered");
  renderScope(document.getElementById("scope"), list.scope);
}

function scheduleList() {
  if (!list.pending) { list.pending = true; requestAnimationFrame(renderList); }
}

function renderScope(node, scope) {
  if (!node || !scope) return;
  const notes = Object.values(scope.denied || {});
  node.replaceChildren(...notes.map((n) => h("p", { class: "notice" }, n)));
}

function showList() {
  document.title = "Canaries · flaggerpy dashboard";
  const control = (label, input) => h("label", {}, label, input);
  const head = h("tr", {}, COLUMNS.map(([key, label]) => h("th", { scope: "col", "data-key": key, "aria-sort": "none" },
    h("button", { type: "button", onclick: () => {
      list.dir = list.sort === key ? -list.dir : 1; list.sort = key; renderList();
    } }, label))));
  main.replaceChildren(
    h("h1", {}, "Canaries"),
    h("div", { id: "scope" }),
    h("div", { class: "filters", role: "search" },
      control("Namespace", h("select", { id: "f-ns", onchange: (e) => { list.ns = e.target.value; list.page = 0; renderList(); } })),
      control("Phase", h("select", { id: "f-phase", onchange: (e) => { list.phase = e.target.value; list.page = 0; renderList(); } })),
      control("Search", h("input", { id: "f-text", type: "search", value: list.text, placeholder: "name or message",
        oninput: (e) => { list.text = e.target.value; list.page = 0; renderList(); } })),
      h("span", { id: "count", class: "muted", role: "status", "aria-live": "polite" })),
    scroller(h("table", { id: "canaries" }, h("caption", { class: "visually-hidden" }, "Canaries, sortable by column"),
      h("thead", {}, head), h("tbody", {}))),
    h("p", { id: "empty", class: "muted", hidden: true }, "No canary matches."),
    h("div", { class: "pager" },
      h("button", { id: "prev", type: "button", onclick: () => { list.page -= 1; renderList(); } }, "Previous page"),
      h("button", { id: "next", type: "button", onclick: () => { list.page += 1; renderList(); } }, "Next page")));
  stream("/api/stream", {
    snapshot: (d) => {
      list.rows = new Map(d.rows.map((r) => [r.key, r])); list.scope = d.scope; setHealth(d.health); scheduleList();
    },
    patch: (d) => {
      for (const r of d.upsert) list.rows.set(r.key, r);
      for (const k of d.remove) list.rows.delete(k);
      scheduleList();
    },
  });
}

// -- one canary --------------------------------------------------------------------------------------------------
const ACTION_TEXT = {
  promote: (k) => `Skip the remaining analysis of canary ${k} and promote it now.`,
  abort: (k) => `Roll canary ${k} back now: all traffic to the primary, phase Failed.`,
  retry: (k) => `Re-run the analysis of canary ${k}'s failed revision.`,
  pause: (k) => `Pause canary ${k} (spec.suspend: true): the controller stops acting on it.`,
  resume: (k) => `Resume canary ${k} (removes spec.suspend).`,
};
let current = null;

function section(title, id, ...body) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...body);
}

// Wide tables scroll inside their box on a narrow window (or at 400% zoom) instead of widening the page.
function scroller(node) {
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": node.querySelector("caption")?.textContent || "table" }, node);
}

function table(caption, headers, rows) {
  return scroller(h("table", {}, h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

function timeOf(t) { return t ? `${t.replace("T", " ").replace("Z", "")} UTC` : "-"; }

function summary(page) {
  const r = page.row, a = page.analysis || {};
  const item = (label, value, id) => h("div", {}, h("dt", {}, label), h("dd", { id }, value));
  return h("dl", { class: "summary" },
    item("Phase", badge(r.phase, r.suspended), "s-phase"),
    item("Canary weight", `${r.weight}%`, "s-weight"),
    item("Iteration", String(r.iterations), "s-iter"),
    item("Failed checks", fails(r), "s-fails"),
    item("In phase", h("span", { "data-since": r.lastTransitionTime || "" }, age(r.lastTransitionTime))),
    item("Strategy", page.strategy || "-"),
    item("Interval", a.interval || "-"),
    item("Max weight / step", a.maxWeight ? `${a.maxWeight}% / ${a.stepWeight || "-"}%` : "-"));
}

function actionBar(page) {
  if (CONFIG.readOnly) return h("p", { class: "muted" }, "Read-only: actions are hidden.");
  return h("div", { class: "actions", role: "group", "aria-label": "Actions" },
    ["promote", "abort", "retry", "pause", "resume"].map((name) => h("button", {
      type: "button", id: `act-${name}`, class: name === "abort" ? "danger" : null,
      disabled: !page.actions[name], title: page.actions[name] ? null : `${name} does not apply in phase ${page.row.phase}`,
      onclick: () => confirmAction(name),
    }, name[0].toUpperCase() + name.slice(1))));
}

function confirmAction(name) {
  const dialog = document.getElementById("confirm");
  const key = current.key;
  document.getElementById("confirm-title").textContent = `${name[0].toUpperCase() + name.slice(1)} ${key}?`;
  document.getElementById("confirm-text").textContent =
    `${ACTION_TEXT[name](key)} This is done with your own credentials` +
    (CONFIG.context ? ` (context ${CONFIG.context}).` : ".");
  const ok = document.getElementById("confirm-ok");
  ok.textContent = `${name[0].toUpperCase() + name.slice(1)} ${key}`;
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue === "ok") act(name, key); else document.getElementById(`act-${name}`)?.focus(); };
  dialog.showModal();
  document.getElementById("confirm-cancel").focus();
}

async function act(name, key) {
  const out = document.getElementById("action-result");
  out.className = "muted";
  out.textContent = `${name}: sending…`;
  let status = 0, message = "";
  try {
    const res = await fetch(`/api/canaries/${key}/${name}`, {
      method: "POST", headers: { "X-Dashboard-Token": CONFIG.token },
    });
    status = res.status;
    message = (await res.json()).message;
  } catch (err) {
    message = String(err);
  }
  if (status === 200) {
    out.className = "success"; out.setAttribute("role", "status"); out.textContent = message;
  } else {
    out.className = "error"; out.setAttribute("role", "alert");
    out.textContent = status === 403 ? `Forbidden (403): ${message}` : `${name} failed (${status || "no answer"}): ${message}`;
  }
  document.getElementById(`act-${name}`)?.focus();
}

function timelineSection(page) {
  const pts = page.timeline;
  const max = page.analysis ? page.analysis.maxWeight : null;
  const running = !["Succeeded", "Failed", "Initialized"].includes(page.row.phase);
  const chart = h("figure", { class: "chart", id: "timeline-chart" });
  if (pts.length) chart.append(Charts.weights("wchart", pts, max, running ? Date.now() : Date.parse(pts[pts.length - 1].time)));
  return section("Release timeline", "h-timeline", chart,
    h("details", { open: true }, h("summary", {}, "Steps as a table"),
      table("Weight steps", ["Time", "Canary weight", "Why"], pts.map((p) => [timeOf(p.time), `${p.weight}%`, p.label]))));
}

function metricsSection(page) {
  if (!page.metrics.length) return section("Metrics", "h-metrics", h("p", { class: "muted" }, "No metric checks."));
  return section("Metrics", "h-metrics", h("div", { class: "metrics" }, page.metrics.map((m, i) => {
    const fig = h("figure", { class: "chart metric", "data-metric": m.name },
      h("h3", {}, `${m.name} `, h("span", { class: "muted" }, `(accepted: ${Charts.rangeText(m)})`)));
    if (m.samples.length) fig.append(Charts.metric(`m${i}`, m));
    else fig.append(h("p", { class: "muted" }, "Not measured yet."));
    fig.append(h("details", {}, h("summary", {}, `${m.samples.length} values as a table`),
      table(`${m.name} values`, ["Time", "Weight", "Value", "Result"], m.samples.map((s) => [
        timeOf(s.time), `${s.weight}%`, Charts.fmt(s.value), s.passed ? "passed" : "FAILED"]))));
    return fig;
  })));
}

function callsText(w) {
  if (!w.calls.length) return w.type === "rollout" ? "not called yet" : "not recorded (see Events)";
  const failed = w.calls.filter((c) => !c.passed).length;
  const last = w.calls[w.calls.length - 1];
  const answer = last.statusCode ? `HTTP ${last.statusCode}` : (last.error || "no answer");
  return `${w.calls.length} calls, ${failed} failed; last ${timeOf(last.time)} at weight ${last.weight}%: ` +
    `${last.passed ? "passed" : "FAILED"} (${last.passed ? answer : last.error || answer})`;
}

function webhooksSection(page) {
  if (!page.webhooks.length) return section("Webhooks", "h-hooks", h("p", { class: "muted" }, "No webhooks."));
  return section("Webhooks", "h-hooks", table("Webhooks", ["Name", "Type", "URL", "Timeout", "Calls", "Events"],
    page.webhooks.map((w) => [w.name, w.type, w.url, `${w.timeout}s`, callsText(w),
      w.results.length ? h("ul", {}, w.results.map((r) => h("li", {}, `${timeOf(r.time)}: ${r.message}`))) : "-"])));
}

function eventsSection(page) {
  return section("Events", "h-events", page.events.length ? table("Events, newest first",
    ["Time", "Type", "Reason", "Message", "Count"],
    page.events.map((e) => [timeOf(e.time), e.type, e.reason, e.message, String(e.count)]))
    : h("p", { class: "muted" }, "No Events (or not allowed to list them)."));
}

function routeSection(page) {
  const r = page.route;
  if (!r) return section("HTTPRoute", "h-route", h("p", { class: "muted" }, "No HTTPRoute yet (or not allowed to list it)."));
  return section(`HTTPRoute ${r.name}`, "h-route",
    r.parents.length ? table("Parents", ["Parent", "Controller", "Accepted", "Reason", "Message"],
      r.parents.map((p) => [p.parent, p.controller || "-", p.accepted, p.reason, p.message]))
      : h("p", { class: "muted" }, "No parent has reported on this route yet."),
    h("details", {}, h("summary", {}, "Route as YAML"), h("pre", { tabindex: "0", "aria-label": "HTTPRoute YAML" }, r.yaml)));
}

function revisionsSection(page) {
  const row = (label, rev) => rev ? [label, rev.name, rev.images.map((i) => `${i.container}: ${i.image}`).join(", "),
    `${rev.ready}/${rev.replicas ?? "-"}`] : [label, "-", "-", "-"];
  return section("Revisions", "h-rev", table("Revisions", ["Role", "Workload", "Images", "Ready"],
    [row("primary", page.revisions.primary), row("canary", page.revisions.canary)]));
}

function releasesSection(page) {
  return section("Releases", "h-releases", page.releases.length ? table("Releases, newest first",
    ["Started", "Ended", "Outcome", "Checks", "Failed checks", "Events"],
    page.releases.map((r) => [timeOf(r.started), timeOf(r.ended), r.outcome, String(r.checks), String(r.failedChecks),
      String(r.events)])) : h("p", { class: "muted" }, "No release recorded in the Events yet."));
}

function renderPage(page) {
  const openDetails = [...main.querySelectorAll("details")].map((d) => d.open);
  const focused = document.activeElement && document.activeElement.id;
  current = page.row;
  setHealth(page.health);
  document.title = `${page.row.key} · flaggerpy dashboard`;
  const body = document.getElementById("canary-body");
  const parts = [
    h("div", { id: "scope" }),
    page.valid ? null : h("p", { class: "error" }, "The Canary's spec is invalid: see its conditions and Events."),
    summary(page), actionBar(page),
    timelineSection(page), metricsSection(page), webhooksSection(page), eventsSection(page), routeSection(page),
    revisionsSection(page), releasesSection(page)];
  body.replaceChildren(...parts.filter((p) => p));
  renderScope(document.getElementById("scope"), page.scope);
  [...main.querySelectorAll("details")].forEach((d, i) => { if (i < openDetails.length) d.open = openDetails[i]; });
  if (focused) document.getElementById(focused)?.focus();
}

function showCanary(namespace, name) {
  document.title = `${namespace}/${name} · flaggerpy dashboard`;
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All canaries")),
    h("h1", {}, `${name} `, h("span", { class: "muted" }, `in ${namespace}`)),
    h("div", { id: "action-result", "aria-live": "polite" }),
    h("div", { id: "canary-body" }, h("p", { class: "muted" }, "Loading…")));
  stream(`/api/stream/${namespace}/${name}`, {
    page: renderPage,
    gone: () => document.getElementById("canary-body").replaceChildren(
      h("p", { class: "notice" }, `Canary ${namespace}/${name} does not exist (or you may not see it).`)),
  });
}

// -- routing and clocks ------------------------------------------------------------------------------------------
function route() {
  const m = location.hash.match(/^#\/canary\/([a-z0-9.-]+)\/([a-z0-9.-]+)$/);
  if (m) showCanary(m[1], m[2]); else showList();
  main.focus();
}

setInterval(() => {
  for (const node of document.querySelectorAll("[data-since]")) {
    if (node.dataset.since) node.textContent = age(node.dataset.since);
  }
}, 1000);
document.getElementById("context").textContent = CONFIG.context ? `context ${CONFIG.context}` : "";
window.addEventListener("hashchange", route);
route();
