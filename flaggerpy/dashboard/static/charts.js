// Small SVG charts for the canary page: the weight timeline and a metric against its threshold range.
// Each chart is role="img" with a title and a description; the page shows the same numbers in a table.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 220, L = 48, R = 16, T = 14, B = 34;

  function el(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(ms) {
    return new Date(ms).toISOString().slice(11, 19);
  }

  function frame(id, title, desc) {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d` });
    svg.append(el("title", { id: `${id}-t` }, title), el("desc", { id: `${id}-d` }, desc));
    return svg;
  }

  function scale(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function axes(svg, x, y, t0, t1, yTicks, unit) {
    for (const v of yTicks) {
      svg.append(el("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, `${fmt(v)}${unit}`));
    }
    svg.append(el("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(el("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    const ticks = t1 > t0 ? [t0, (t0 + t1) / 2, t1] : [t0];
    ticks.forEach((t, i) => {
      const anchor = ticks.length === 1 ? "start" : ["start", "middle", "end"][i];
      svg.append(el("text", { x: x(t), y: H - B + 16, "text-anchor": anchor }, `${clock(t)} UTC`));
    });
  }

  function fmt(v) {
    if (v === null || v === undefined) return "no data";
    return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(3);
  }

  // points: [{time, weight, label}] oldest first; now: ms for the right edge while a release runs.
  function weights(id, points, maxWeight, now) {
    const times = points.map((p) => Date.parse(p.time));
    const t0 = Math.min(...times), t1 = Math.max(now, ...times);
    const x = scale(t0, t1, L + 6, W - R - 6), y = scale(0, 100, H - B, T);
    const last = points[points.length - 1];
    const desc = `Canary weight over time: ${points.map((p) => `${p.weight}% at ${clock(Date.parse(p.time))}`)
      .join(", ")}. Now ${last.weight}%.${maxWeight ? ` Maximum weight ${maxWeight}%.` : ""}`;
    const svg = frame(id, "Release timeline: canary weight", desc);
    axes(svg, x, y, t0, t1, [0, 25, 50, 75, 100], "%");
    if (maxWeight) {
      svg.append(el("line", { class: "bound", x1: L, x2: W - R, y1: y(maxWeight), y2: y(maxWeight) }));
      svg.append(el("text", { x: W - R, y: y(maxWeight) - 4, "text-anchor": "end" }, `max ${maxWeight}%`));
    }
    let d = "";
    points.forEach((p, i) => {
      const px = x(times[i]), py = y(p.weight);
      d += i === 0 ? `M${px},${py}` : `H${px}V${py}`;
    });
    d += `H${x(t1)}`;
    svg.append(el("path", { class: "line", d }));
    points.forEach((p, i) => {
      const dot = el("circle", { class: "pt", cx: x(times[i]), cy: y(p.weight), r: 4 });
      dot.append(el("title", {}, `${p.weight}% at ${clock(times[i])} UTC: ${p.label}`));
      svg.append(dot);
    });
    return svg;
  }

  // metric: {name, min, max, samples: [{time, value, passed}]}
  function metric(id, m) {
    const samples = m.samples;
    const times = samples.map((s) => Date.parse(s.time));
    const values = samples.map((s) => s.value).filter((v) => typeof v === "number");
    const bounds = [m.min, m.max].filter((v) => typeof v === "number");
    let lo = Math.min(...values, ...bounds), hi = Math.max(...values, ...bounds);
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
    lo -= pad; hi += pad;
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = scale(t0, t1, L + 8, W - R - 8), y = scale(lo, hi, H - B, T);
    const failed = samples.filter((s) => !s.passed).length;
    const range = rangeText(m);
    const desc = `${m.name}: ${samples.length} measurements, ${failed} outside the accepted range (${range}). ` +
      samples.map((s, i) => `${fmt(s.value)} at ${clock(times[i])} ${s.passed ? "passed" : "failed"}`).join("; ");
    const svg = frame(id, `${m.name} against its threshold range`, desc);
    const top = typeof m.max === "number" ? y(m.max) : T, bottom = typeof m.min === "number" ? y(m.min) : H - B;
    if (bounds.length) svg.append(el("rect", { class: "band", x: L, width: W - R - L, y: top, height: bottom - top }));
    const ticks = [lo + pad, (lo + hi) / 2, hi - pad];
    axes(svg, x, y, t0, t1, ticks, "");
    for (const [v, label] of [[m.min, "min"], [m.max, "max"]]) {
      if (typeof v !== "number") continue;
      svg.append(el("line", { class: "bound", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(el("text", { x: W - R, y: y(v) - 4, "text-anchor": "end" }, `${label} ${fmt(v)}`));
    }
    samples.forEach((s, i) => {
      const px = x(times[i]), py = typeof s.value === "number" ? y(s.value) : H - B - 6;
      const tip = el("title", {}, `${fmt(s.value)} at ${clock(times[i])} UTC, weight ${s.weight}%: ` +
        (s.passed ? "passed" : "failed"));
      let mark;
      if (s.passed) {
        mark = el("circle", { class: "pass", cx: px, cy: py, r: 4 });
      } else {
        mark = el("path", { class: "fail", d: `M${px - 5},${py - 5}L${px + 5},${py + 5}M${px - 5},${py + 5}L${px + 5},${py - 5}` });
      }
      mark.append(tip);
      svg.append(mark);
    });
    return svg;
  }

  function rangeText(m) {
    if (typeof m.min === "number" && typeof m.max === "number") return `${fmt(m.min)} to ${fmt(m.max)}`;
    if (typeof m.min === "number") return `at least ${fmt(m.min)}`;
    if (typeof m.max === "number") return `at most ${fmt(m.max)}`;
    return "no threshold";
  }

  return { weights, metric, rangeText, fmt, clock };
})();
