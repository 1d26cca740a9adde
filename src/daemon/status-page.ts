/**
 * The status page served at `/`: one self-contained, read-only HTML document (inline CSS and JS, no
 * external assets) that polls /api/status and /api/imbalance. Every value from the API reaches the
 * DOM through textContent or attribute setters, never as markup. The inline script and style carry a
 * per-response nonce that the Content-Security-Policy header names.
 *
 * The script deliberately avoids backticks, `${` and backslashes, so this module can hold it in a
 * plain template literal.
 */

const STYLE = String.raw`
:root {
  --bg: #f4f6f8; --panel: #ffffff; --ink: #1f2933; --muted: #667085; --line: #e3e7ec; --track: #edf0f3;
  --ok: #2f855a; --ok-bg: #e6f4ea; --warn: #b7791f; --warn-bg: #fdf3e1; --bad: #c53030; --bad-bg: #fdecec;
  --info: #2b6cb0; --info-bg: #e8f0fb; --maint: #6b46c1; --maint-bg: #f0ebfb;
  --cpu: #4a7fb5; --mem: #5a9e8f; --hot: #d08a3c;
  color-scheme: light;
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { background: var(--bg); color: var(--ink); font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px; background: var(--panel); border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 17px; font-weight: 650; letter-spacing: 0.2px; }
header h1 span { color: var(--muted); font-weight: 400; }
#summary { color: var(--muted); flex: 1; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#conn { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: var(--track); color: var(--muted); }
#conn.live { background: var(--ok-bg); color: var(--ok); }
#conn.down { background: var(--bad-bg); color: var(--bad); }
main { display: grid; grid-template-columns: minmax(0, 1fr) 440px; gap: 16px; padding: 16px 20px 24px; max-width: 1480px; margin: 0 auto; }
.col { display: flex; flex-direction: column; gap: 16px; min-width: 0; }
.wide { grid-column: 1 / -1; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
section > h2 { margin: 0 0 8px; font-size: 13px; font-weight: 650; text-transform: uppercase; letter-spacing: 0.6px; color: var(--muted); display: flex; gap: 8px; align-items: baseline; }
section > h2 .aside { margin-left: auto; text-transform: none; letter-spacing: 0; font-weight: 400; }
.empty { color: var(--muted); font-style: italic; padding: 4px 0; }
.cell + .cell { margin-top: 14px; }
.cell-head { display: flex; align-items: baseline; gap: 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); margin-bottom: 2px; }
.cell-head h3 { margin: 0; font-size: 14px; font-weight: 650; }
.cell-head .meta { color: var(--muted); font-size: 12px; }
.cell-head .meta b { font-weight: 600; color: var(--ink); }
.host { display: grid; grid-template-columns: 92px 128px 34px 1fr 1fr; align-items: center; gap: 10px; padding: 4px 0; border-bottom: 1px dashed var(--line); }
.host:last-child { border-bottom: 0; }
.host .name { font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.host .vms { color: var(--muted); text-align: right; font-variant-numeric: tabular-nums; }
.host.maint .name { color: var(--maint); }
.host.down { opacity: 0.6; }
.badges { display: flex; gap: 4px; flex-wrap: wrap; }
.badge { display: inline-block; font-size: 11px; line-height: 16px; padding: 0 6px; border-radius: 8px; background: var(--track); color: var(--muted); white-space: nowrap; }
.badge.ok, .badge.succeeded { background: var(--ok-bg); color: var(--ok); }
.badge.hot, .badge.aborted { background: var(--warn-bg); color: var(--warn); }
.badge.down, .badge.failed { background: var(--bad-bg); color: var(--bad); }
.badge.maint { background: var(--maint-bg); color: var(--maint); }
.badge.running, .badge.intent, .badge.move { background: var(--info-bg); color: var(--info); }
.meter { display: grid; grid-template-columns: 30px 1fr 38px; align-items: center; gap: 6px; font-size: 11px; color: var(--muted); }
.meter .val { text-align: right; font-variant-numeric: tabular-nums; color: var(--ink); }
.track { position: relative; height: 10px; background: var(--track); border-radius: 3px; }
.fill { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; background: var(--cpu); }
.meter.mem .fill { background: var(--mem); }
.fill.over { background: var(--hot); }
.mark { position: absolute; top: -3px; bottom: -3px; width: 0; border-left: 2px solid #9aa5b1; }
.mark.high { border-left-color: #c05621; }
.legend-marks { font-size: 11px; color: var(--muted); display: flex; gap: 12px; margin-top: 8px; }
.legend-marks i { display: inline-block; width: 0; height: 10px; border-left: 2px solid #9aa5b1; margin-right: 4px; vertical-align: -1px; }
.legend-marks i.high { border-left-color: #c05621; }
.kv { display: grid; grid-template-columns: 128px 1fr; gap: 3px 10px; margin-top: 8px; }
.kv dt { color: var(--muted); }
.kv dd { margin: 0; font-variant-numeric: tabular-nums; }
.route { font-size: 15px; font-weight: 650; }
.route .arrow { color: var(--muted); font-weight: 400; padding: 0 4px; }
.sub { color: var(--muted); font-size: 12px; }
.progress { height: 8px; background: var(--track); border-radius: 4px; overflow: hidden; margin: 8px 0 2px; }
.progress > div { height: 100%; background: var(--info); border-radius: 4px; transition: width 0.6s ease; }
.progress.drain > div { background: var(--maint); }
ol.guards { margin: 4px 0 0; padding-left: 18px; }
ol.guards li { margin: 2px 0; }
ol.guards .act { font-weight: 600; }
.drain + .drain { margin-top: 12px; padding-top: 10px; border-top: 1px solid var(--line); }
.drain .top { display: flex; align-items: baseline; gap: 8px; }
.drain .host-name { font-weight: 650; color: var(--maint); white-space: nowrap; }
.drain .top .badge { flex: none; }
.drain .reason { color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; flex: 1; }
.drain .counts { font-size: 12px; font-variant-numeric: tabular-nums; }
ul.blocked { margin: 6px 0 0; padding-left: 18px; font-size: 12px; }
ul.blocked li { color: var(--bad); }
ul.blocked li span { color: var(--ink); }
.chart + .chart { margin-top: 6px; }
.chart-title { font-size: 12px; color: var(--muted); margin: 2px 0; }
svg.plot { display: block; width: 100%; height: auto; }
svg.plot .grid { stroke: var(--line); stroke-width: 1; }
svg.plot .axis { fill: var(--muted); font-size: 10px; }
svg.plot .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; stroke-linecap: round; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12px; margin-top: 6px; }
.legend span::before { content: ""; display: inline-block; width: 14px; height: 3px; border-radius: 2px; margin-right: 5px; vertical-align: 3px; background: var(--c); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; border-bottom: 1px solid var(--line); padding: 4px 8px 4px 0; }
td { padding: 5px 8px 5px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; }
td { white-space: nowrap; }
td .err { color: var(--bad); font-size: 12px; display: block; max-width: 300px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.slower { color: var(--warn); }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 0 0 20px; }
footer a { color: inherit; }
`;

const SCRIPT = String.raw`
"use strict";
(function () {
  var POLL_MS = 2000, IMBALANCE_EVERY_MS = 10000, WINDOW_MIN = 60;
  var PALETTE = ["#3b6ea8", "#d07a2d", "#4c9a6a", "#a14d8c", "#8a7a2a", "#2e8f9e", "#c0504d", "#6b6fbf"];
  var SVG = "http://www.w3.org/2000/svg";
  var status = null, imbalance = null, lastImbalanceAt = 0, lastOkAt = 0;

  function el(tag, cls, kids) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    append(e, kids);
    return e;
  }
  function append(e, kids) {
    if (kids === undefined || kids === null || kids === false) return e;
    if (!Array.isArray(kids)) kids = [kids];
    for (var i = 0; i < kids.length; i++) {
      var k = kids[i];
      if (k === undefined || k === null || k === false) continue;
      e.append(typeof k === "object" ? k : String(k)); // strings become text nodes
    }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function byId(id) { return document.getElementById(id); }
  function pct(x) { return typeof x === "number" && isFinite(x) ? (x * 100).toFixed(0) + "%" : "–"; }
  function clamp01(x) { return Math.max(0, Math.min(1, typeof x === "number" && isFinite(x) ? x : 0)); }
  function mib(x) {
    if (typeof x !== "number" || !isFinite(x)) return "–";
    return x >= 1024 ? (x / 1024).toFixed(x >= 10240 ? 0 : 1) + " GiB" : x.toFixed(0) + " MiB";
  }
  function dur(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s";
    var m = Math.floor(ms / 60000), s = Math.round((ms % 60000) / 1000);
    if (m < 60) return m + " min " + s + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function ago(ms) { return dur(Math.max(0, ms)) + " ago"; }
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function stamp(t) { var d = new Date(t); return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + clock(t); }
  function clock(t) { var d = new Date(t); return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); }
  function badge(text, cls, title) { var b = el("span", "badge " + (cls || ""), text); if (title) b.title = title; return b; }
  function setWidth(node, frac) { node.style.width = (clamp01(frac) * 100).toFixed(1) + "%"; }

  function meter(label, kind, value, low, high) {
    var track = el("div", "track");
    var fill = el("div", "fill" + (value >= high ? " over" : ""));
    setWidth(fill, value);
    track.append(fill);
    var ml = el("div", "mark low"); ml.style.left = (clamp01(low) * 100).toFixed(1) + "%"; ml.title = label + " low mark " + pct(low);
    var mh = el("div", "mark high"); mh.style.left = (clamp01(high) * 100).toFixed(1) + "%"; mh.title = label + " high mark " + pct(high);
    track.append(ml, mh);
    return el("div", "meter " + kind, [el("span", "", label), track, el("span", "val", pct(value))]);
  }

  function renderSummary(s) {
    var parts = ["up since " + stamp(Date.parse(s.startedAt)), s.roundsRun + " rounds"];
    var lr = s.lastRound;
    if (lr) {
      parts.push("last round " + ago(Date.parse(s.now) - lr.startedAt) + ": " + lr.outcome + (lr.error ? " (" + String(lr.error).slice(0, 120) + ")" : "") + ", " + lr.moves + " planned, " + lr.blocked + " blocked");
    } else parts.push("no round yet");
    if (s.plan) parts.push("plan: " + s.plan.totalMoves + " move(s), " + s.plan.totalBlocked + " blocked");
    byId("summary").textContent = parts.join(" · ");
    byId("summary").title = parts.join("\n");
  }

  function renderCells(s) {
    var root = byId("cells");
    var t = s.thresholds;
    var imb = {};
    (s.imbalance || []).forEach(function (c) { imb[c.cell] = c; });
    var moving = {};
    if (s.inFlight) { moving[s.inFlight.move.from] = "sending"; moving[s.inFlight.move.to] = "receiving"; }
    var draining = {};
    (s.drains || []).forEach(function (d) { draining[d.host] = d; });
    var nodes = [];
    if (!s.cells.length) nodes.push(el("div", "empty", "No sample yet."));
    s.cells.forEach(function (c) {
      var i = imb[c.cell];
      var meta = el("span", "meta", [c.hosts.length + " hosts"]);
      if (i) append(meta, [" · imbalance σ cpu ", el("b", "", pct(i.cpu)), " · mem ", el("b", "", pct(i.memory))]);
      var box = el("div", "cell", el("div", "cell-head", [el("h3", "", c.cell), meta]));
      box.setAttribute("data-cell", c.cell);
      c.hosts.forEach(function (h) {
        var badges = el("div", "badges");
        var hot = h.cpuLoad >= t.cpuHigh || h.memoryUsed >= t.memHigh;
        if (!h.reachable) badges.append(badge("unreachable", "down"));
        if (h.maintenance) {
          var d = draining[h.name];
          badges.append(badge(d ? (d.vmsLeft ? "draining" : "drained") : "maintenance", "maint", h.maintenanceReason || (d && d.reason) || "maintenance"));
        }
        if (hot) badges.append(badge("hot", "hot", "at or above a high mark"));
        if (moving[h.name]) badges.append(badge(moving[h.name], "move"));
        if (!badges.childNodes.length) badges.append(badge("ok", "ok"));
        var row = el("div", "host" + (h.maintenance ? " maint" : "") + (h.reachable ? "" : " down"), [
          el("div", "name", h.name),
          badges,
          el("div", "vms", h.vms),
          meter("CPU", "cpu", h.cpuLoad, t.cpuLow, t.cpuHigh),
          meter("mem", "mem", h.memoryUsed, t.memLow, t.memHigh),
        ]);
        row.setAttribute("data-host", h.name);
        row.querySelector(".name").title = h.name + ": " + h.vms + " VM(s), " + mib(h.memoryUsedMiB) + " of " + mib(h.memoryMiB) + " memory";
        box.append(row);
      });
      nodes.push(box);
    });
    nodes.push(el("div", "legend-marks", [
      el("span", "", [el("i", "low"), "low mark (cpu " + pct(t.cpuLow) + ", mem " + pct(t.memLow) + ")"]),
      el("span", "", [el("i", "high"), "high mark (cpu " + pct(t.cpuHigh) + ", mem " + pct(t.memHigh) + ")"]),
      el("span", "", "columns: host · state · VMs · CPU load · memory used"),
    ]));
    root.replaceChildren.apply(root, nodes);
  }

  function renderInFlight(s) {
    var root = byId("inflight");
    var f = s.inFlight;
    if (!f) { root.replaceChildren(el("div", "empty", "No migration in flight.")); return; }
    var st = f.stats;
    var nodes = [
      el("div", "route", el("span", "vm", f.move.vm)),
      el("div", "sub", [f.move.from, el("span", "arrow", " → "), f.move.to, " · " + f.move.kind + " · " + f.move.policy]),
    ];
    var bar = el("div", "progress", el("div"));
    var frac = st && st.dataTotalMiB > 0 ? st.dataProcessedMiB / st.dataTotalMiB : 0;
    setWidth(bar.firstChild, frac);
    nodes.push(bar);
    var kv = el("dl", "kv");
    function row(k, v) { kv.append(el("dt", "", k), el("dd", "", v)); }
    if (st) {
      row("data remaining", mib(st.dataRemainingMiB) + " of " + mib(st.dataTotalMiB) + " (" + pct(frac) + " copied)");
      row("phase · pass", st.phase + " · memory pass " + st.memoryIteration);
      row("dirty rate / link", (st.dirtyRateMiBps != null ? mib(st.dirtyRateMiBps) + "/s" : "–") + " / " + (st.bandwidthMiBps != null ? mib(st.bandwidthMiBps) + "/s" : "–"));
      if (st.maxDowntimeMs != null) row("downtime limit", dur(st.maxDowntimeMs));
    } else row("data remaining", "waiting for the first statistics…");
    row("elapsed", dur(f.elapsedMs) + (f.predictedMs != null ? " (predicted " + dur(f.predictedMs) + ")" : ""));
    if (f.predictedDowntimeMs != null) row("pred. downtime", dur(f.predictedDowntimeMs));
    row("reason", f.move.reason);
    nodes.push(kv);
    var g = f.guardDecisions || [];
    var gl = el("div", "", [el("div", "sub", "Guard decisions" + (g.length ? " (" + g.length + ")" : ""))]);
    if (!g.length) gl.append(el("div", "empty", "none so far: the copy is converging on its own"));
    else {
      var ol = el("ol", "guards");
      g.forEach(function (d) {
        ol.append(el("li", "", [el("span", "act", d.action + (d.ms != null ? " " + dur(d.ms) : "")), " at " + clock(d.at) + (d.reason ? ": " : ""), d.reason || ""]));
      });
      gl.append(ol);
    }
    nodes.push(gl);
    root.replaceChildren.apply(root, nodes);
    root.setAttribute("data-vm", f.move.vm);
  }

  function renderDrains(s) {
    var root = byId("drains");
    var ds = s.drains || [];
    byId("drain-count").textContent = ds.length ? ds.length + " host(s)" : "";
    if (!ds.length) { root.replaceChildren(el("div", "empty", "No host in maintenance.")); return; }
    var nodes = ds.map(function (d) {
      var total = d.moved + d.vmsLeft;
      var bar = el("div", "progress drain", el("div"));
      setWidth(bar.firstChild, total > 0 ? d.moved / total : 1);
      var state = d.vmsLeft === 0 ? badge("drained", "ok") : d.blocked.length >= d.vmsLeft ? badge("stuck", "down") : badge("draining", "maint");
      var box = el("div", "drain", [
        el("div", "top", [el("span", "host-name", d.host), state, el("span", "reason", d.reason || "no reason given")]),
        bar,
        el("div", "counts", [
          el("b", "", d.vmsLeft), " VM(s) left · " + d.moved + " moved" + (d.failed ? " · " + d.failed + " failed" : "") + " · " + d.blocked.length + " blocked" +
            (d.since ? " · since " + clock(d.since) : ""),
        ]),
      ]);
      box.querySelector(".reason").title = d.reason || "";
      if (d.blocked.length) {
        var ul = el("ul", "blocked");
        d.blocked.slice(0, 8).forEach(function (b) { ul.append(el("li", "", [el("span", "", b.vm + ": "), b.reason])); });
        if (d.blocked.length > 8) ul.append(el("li", "", "… and " + (d.blocked.length - 8) + " more"));
        box.append(ul);
      }
      box.setAttribute("data-host", d.host);
      return box;
    });
    root.replaceChildren.apply(root, nodes);
  }

  function outcomeOf(m) { return m.status; }
  function renderMigrations(s) {
    var root = byId("migrations");
    var ms = (s.recentMigrations || []).slice(0, 12);
    if (!ms.length) { root.replaceChildren(el("div", "empty", "No migration yet.")); return; }
    var head = el("tr", "", ["Started", "VM", "From → to", "Policy", "Kind", "Outcome", "Duration", "Predicted", "Downtime", "Pred. downtime", "Data"].map(function (h, i) {
      return el("th", i >= 6 ? "num" : "", h);
    }));
    var body = el("tbody");
    ms.forEach(function (m) {
      var pred = m.details && m.details.prediction ? m.details.prediction : null;
      var actual = m.actualMs != null ? m.actualMs : m.finishedAt != null ? m.finishedAt - (m.runningAt || m.startedAt) : null;
      var slower = actual != null && m.predictedMs != null && actual > m.predictedMs * 1.5;
      var vm = el("td", "", m.vm);
      if (m.error) append(vm, el("span", "err", m.error));
      if (m.error) vm.querySelector(".err").title = m.error;
      var tr = el("tr", "", [
        el("td", "", clock(m.startedAt)),
        vm,
        el("td", "", [m.from, " → ", m.to]),
        el("td", "", m.policy),
        el("td", "", m.kind),
        el("td", "", badge(outcomeOf(m), m.status, m.reason)),
        el("td", "num" + (slower ? " slower" : ""), m.status === "running" || m.status === "intent" ? "running" : dur(actual)),
        el("td", "num", dur(m.predictedMs)),
        el("td", "num", dur(m.downtimeMs)),
        el("td", "num", pred && typeof pred.downtimeMs === "number" ? dur(pred.downtimeMs) : "–"),
        el("td", "num", mib(m.dataMiB)),
      ]);
      tr.setAttribute("data-status", m.status);
      body.append(tr);
    });
    root.replaceChildren(el("table", "", [el("thead", "", head), body]));
  }

  function niceMax(v) {
    var steps = [0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1];
    for (var i = 0; i < steps.length; i++) if (v <= steps[i]) return steps[i];
    return 1;
  }
  function chart(title, cells, idx, colors, x0, x1) {
    var W = 410, H = 132, L = 34, R = 6, T = 6, B = 18;
    var max = 0;
    cells.forEach(function (c) { c.points.forEach(function (p) { if (p[idx] > max) max = p[idx]; }); });
    var ymax = niceMax(max * 1.1 || 0.025);
    var longSpan = x1 - x0 > 10 * 60000;
    var sx = function (t) { return L + ((t - x0) / (x1 - x0)) * (W - L - R); };
    var sy = function (v) { return T + (1 - Math.min(v, ymax) / ymax) * (H - T - B); };
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "plot", role: "img" });
    var lab = svg("title", {}); lab.textContent = title; s.append(lab);
    for (var k = 0; k <= 5; k++) {
      var v = (ymax * k) / 5, y = sy(v);
      s.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
      var tx = svg("text", { x: L - 4, y: y + 3, "text-anchor": "end", class: "axis" }); tx.textContent = +(v * 100).toFixed(1) + "%";
      s.append(tx);
    }
    for (var j = 0; j <= 3; j++) {
      var t = x0 + ((x1 - x0) * j) / 3;
      var xt = svg("text", { x: sx(t), y: H - 4, "text-anchor": j === 0 ? "start" : j === 3 ? "end" : "middle", class: "axis" });
      xt.textContent = longSpan ? clock(t).slice(0, 5) : clock(t);
      s.append(xt);
    }
    cells.forEach(function (c, i) {
      if (!c.points.length) return;
      var d = c.points.map(function (p, n) { return (n ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[idx]).toFixed(1); }).join(" ");
      if (c.points.length === 1) d += " h0.1";
      var path = svg("path", { d: d, class: "series", stroke: colors[i] });
      path.setAttribute("data-cell", c.cell);
      var pt = svg("title", {}); pt.textContent = c.cell; path.append(pt);
      s.append(path);
      var last = c.points[c.points.length - 1];
      s.append(svg("circle", { cx: sx(last[0]).toFixed(1), cy: sy(last[idx]).toFixed(1), r: 2.6, fill: colors[i] }));
    });
    return el("div", "chart", [el("div", "chart-title", title), s]);
  }
  function renderImbalance() {
    var root = byId("imbalance");
    if (!imbalance) return;
    var cells = imbalance.cells || [];
    var pts = 0, first = Infinity;
    cells.forEach(function (c) { pts += c.points.length; c.points.forEach(function (p) { if (p[0] < first) first = p[0]; }); });
    if (!pts) { root.replaceChildren(el("div", "empty", "No rounds recorded yet.")); return; }
    var x1 = imbalance.toMs, x0 = Math.max(imbalance.fromMs, Math.min(first, x1 - 60000));
    byId("imbalance-span").textContent = "last " + dur(x1 - x0).replace(/ \d+ s$/, "").replace(/ 0 min$/, "");
    var colors = cells.map(function (_, i) { return PALETTE[i % PALETTE.length]; });
    var legend = el("div", "legend");
    cells.forEach(function (c, i) { var sp = el("span", "", c.cell); sp.style.setProperty("--c", colors[i]); legend.append(sp); });
    root.replaceChildren(
      chart("CPU load: standard deviation across hosts", cells, 1, colors, x0, x1),
      chart("Memory use: standard deviation across hosts", cells, 2, colors, x0, x1),
      legend
    );
  }

  function setConn(ok, text) {
    var c = byId("conn");
    c.className = ok ? "live" : "down";
    c.textContent = text;
  }

  async function getJson(path) {
    var r = await fetch(path, { cache: "no-store", headers: { accept: "application/json" }, signal: AbortSignal.timeout(5000) });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  async function tick() {
    try {
      status = await getJson("/api/status");
      lastOkAt = Date.now();
      renderSummary(status);
      renderCells(status);
      renderInFlight(status);
      renderDrains(status);
      renderMigrations(status);
      if (Date.now() - lastImbalanceAt >= IMBALANCE_EVERY_MS) {
        lastImbalanceAt = Date.now();
        imbalance = await getJson("/api/imbalance?minutes=" + WINDOW_MIN);
        renderImbalance();
      }
      setConn(true, "live · " + clock(Date.parse(status.now)));
      document.body.setAttribute("data-ready", "1");
    } catch (e) {
      setConn(false, lastOkAt ? "no answer since " + clock(lastOkAt) + ", retrying" : "cannot reach the daemon, retrying");
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }
  tick();
})();
`;

const BODY = `<header>
  <h1>ballast <span>status</span></h1>
  <div id="summary">loading…</div>
  <div id="conn">connecting…</div>
</header>
<main>
  <div class="col">
    <section><h2>Hosts by cell</h2><div id="cells"><div class="empty">loading…</div></div></section>
  </div>
  <div class="col">
    <section><h2>Migration in flight</h2><div id="inflight"><div class="empty">loading…</div></div></section>
    <section><h2>Maintenance drains <span class="aside" id="drain-count"></span></h2><div id="drains"><div class="empty">loading…</div></div></section>
    <section><h2>Imbalance per cell <span class="aside" id="imbalance-span"></span></h2><div id="imbalance"><div class="empty">loading…</div></div></section>
  </div>
  <section class="wide"><h2>Recent migrations</h2><div id="migrations"><div class="empty">loading…</div></div></section>
</main>
<footer>Read-only view, refreshed every 2 s · <a href="/api/status">/api/status</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></footer>`;

/** The page, with `nonce` on its inline style and script (the CSP header must name the same nonce). */
export function statusPage(nonce: string): string {
  if (!/^[A-Za-z0-9+/=]+$/.test(nonce)) throw new Error("nonce: expected base64");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ballast status</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
${BODY}
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}
