// The ORCA vault console: reads /api/v1/overview and /api/v1/recovery-points with the token
// the user logged in with (kept in this tab's sessionStorage only) and redraws every 5 s.
// Every value is written with textContent, never as HTML: names come from clients.
"use strict";

const API = "/api/v1";
const KEY = "orca-token";
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, text, cls, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

function when(unix) {
  if (unix === undefined || unix === null) return "never";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function span(secs) {
  if (secs === undefined || secs === null) return "—";
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m`;
  return `${secs}s`;
}

async function get(path) {
  const r = await fetch(API + path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } });
  if (r.status === 401 || r.status === 403) {
    const body = await r.json().catch(() => ({}));
    throw Object.assign(new Error(body.error || "the vault refused the token"), { auth: true });
  }
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function row(tbody, cells, attrs) {
  const tr = el("tr", null, null, attrs);
  for (const c of cells) {
    const td = c instanceof Node ? el("td") : el("td", c.text, c.cls, c.attrs);
    if (c instanceof Node) td.appendChild(c);
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}

function card(label, value, field) {
  const c = el("div", null, "card");
  c.appendChild(el("div", value, "value", { "data-field": field }));
  c.appendChild(el("div", label, "label"));
  return c;
}

function drawCards(o) {
  const s = o.storage;
  const ratio = s.stored_bytes ? (s.logical_bytes / s.stored_bytes) : 0;
  const cards = $("cards");
  cards.replaceChildren(
    card("databases", o.databases.length, "databases"),
    card("protected (as RMAN wrote it)", bytes(s.logical_bytes), "logical"),
    card("stored", bytes(s.stored_bytes), "stored"),
    card("dedup and compression savings", ratio ? ratio.toFixed(1) + "×" : "—", "ratio"),
    card("databases beyond their RPO", o.databases.filter((d) => d.exposed).length, "exposed"),
  );
  cards.setAttribute("data-stored-bytes", s.stored_bytes);
  cards.setAttribute("data-logical-bytes", s.logical_bytes);
}

function drawAlerts(o) {
  const ul = $("alerts");
  ul.replaceChildren();
  for (const a of o.alerts) {
    ul.appendChild(el("li", `${a.database}: ${a.message}`, a.severity, { "data-db": a.database, "data-severity": a.severity }));
  }
  if (!o.alerts.length) ul.appendChild(el("li", "Nothing needs attention.", "none"));
}

function drawDatabases(o) {
  const tb = $("databases").tBodies[0];
  tb.replaceChildren();
  for (const d of o.databases) {
    const a = d.agent;
    row(tb, [
      { text: d.database, attrs: { "data-field": "database" } },
      { text: a ? a.agent : "none", cls: a ? (a.alive ? "ok" : "bad") : "muted", attrs: { "data-field": "agent" } },
      { text: a ? when(a.seen) : "—" },
      { text: d.recovery_points, cls: "num", attrs: { "data-field": "recovery_points" } },
      { text: when(d.last_point) },
      { text: `${span(d.exposure_secs)} / ${span(d.rpo_secs)}`, cls: d.exposed ? "bad" : "ok", attrs: { "data-field": "exposure", "data-exposed": d.exposed } },
      { text: bytes(d.logical_bytes), cls: "num" },
      { text: bytes(d.stored_bytes), cls: "num", attrs: { "data-field": "stored", "data-bytes": d.stored_bytes } },
      { text: d.last_job || "—", cls: d.last_job === "failed" ? "bad" : "" },
    ], { "data-db": d.database });
  }
}

function drawJobs(o) {
  const tb = $("jobs").tBodies[0];
  tb.replaceChildren();
  for (const j of o.jobs) {
    const est = j.progress.bytes_estimated;
    const done = j.progress.bytes_done;
    const cell = el("span");
    if (est) {
      const bar = el("span", null, "bar");
      const fill = el("span");
      fill.style.width = Math.min(100, 100 * done / est).toFixed(0) + "%";
      bar.appendChild(fill);
      cell.appendChild(bar);
      cell.appendChild(el("span", ` ${bytes(done)} of ${bytes(est)}`));
    } else {
      cell.appendChild(el("span", bytes(done)));
    }
    row(tb, [
      { text: j.id.slice(0, 12), attrs: { "data-field": "job" } },
      { text: j.database },
      { text: j.kind },
      { text: j.state, cls: j.state === "failed" ? "bad" : (j.state === "succeeded" ? "ok" : "warn"), attrs: { "data-field": "state" } },
      { text: when(j.requested) },
      cell,
      { text: j.message },
    ], { "data-job": j.id });
  }
}

function drawPoints(points) {
  const tb = $("points").tBodies[0];
  tb.replaceChildren();
  for (const p of points.slice().reverse().slice(0, 200)) {
    const scn = p.first_scn !== undefined && p.next_scn !== undefined ? `${p.first_scn} – ${p.next_scn}` : "—";
    row(tb, [
      { text: p.id.slice(0, 12) },
      { text: p.database },
      { text: p.kind },
      { text: when(p.created) },
      { text: scn },
      { text: p.stats.pieces, cls: "num" },
      { text: bytes(p.stats.bytes), cls: "num" },
      { text: bytes(p.stats.stored), cls: "num" },
    ], { "data-point": p.id });
  }
}

// Protected bytes (cumulative, light) against stored bytes (dark): the gap is the saving.
function drawChart(o) {
  const NS = "http://www.w3.org/2000/svg";
  const h = o.history;
  const box = $("chart");
  box.replaceChildren();
  if (h.length < 1) { box.appendChild(el("p", "No recovery points yet.", "muted")); return; }
  const W = 1000, H = 240, L = 70, B = 24, T = 10, R = 10;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const t0 = h[0].time, t1 = Math.max(h[h.length - 1].time, t0 + 1);
  const top = Math.max(1, h[h.length - 1].logical_bytes);
  const x = (t) => L + (W - L - R) * (h.length === 1 ? 1 : (t - t0) / (t1 - t0));
  const y = (b) => H - B - (H - B - T) * b / top;
  for (const [cls, key] of [["logical", "logical_bytes"], ["stored", "stored_bytes"]]) {
    const p = document.createElementNS(NS, "polyline");
    p.setAttribute("class", cls);
    p.setAttribute("points", h.map((q) => `${x(q.time).toFixed(1)},${y(q[key]).toFixed(1)}`).join(" "));
    svg.appendChild(p);
  }
  const label = (tx, ty, s, cls) => {
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", tx); t.setAttribute("y", ty); t.textContent = s;
    if (cls) t.setAttribute("class", cls);
    svg.appendChild(t);
  };
  label(4, T + 10, bytes(top));
  label(4, H - B, "0");
  label(L, H - 6, when(t0));
  label(W - R - 150, H - 6, when(t1));
  label(L + 10, T + 14, "— protected (as RMAN wrote it)", "legend-logical");
  label(L + 10, T + 28, "— stored", "legend-stored");
  box.appendChild(svg);
}

async function refresh() {
  try {
    const [o, points, me] = await Promise.all([get("/overview"), get("/recovery-points"), get("/whoami")]);
    $("whoami").textContent = `${me.scope} token${me.scope === "admin" ? "" : " of " + me.database}`;
    drawCards(o); drawAlerts(o); drawDatabases(o); drawJobs(o); drawPoints(points); drawChart(o);
    $("updated").textContent = "Updated " + when(o.generated) + "; refreshed every 5 s.";
    document.body.setAttribute("data-loaded", "true");
  } catch (e) {
    if (e.auth) { logout(e.message); return; }
    $("updated").textContent = "Cannot reach the vault: " + e.message;
  }
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("app").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
}

function logout(why) {
  sessionStorage.removeItem(KEY);
  if (timer) clearInterval(timer);
  timer = null;
  $("whoami").textContent = "";
  $("login-error").textContent = why || "";
  show(false);
}

function login(token) {
  sessionStorage.setItem(KEY, token.trim());
  show(true);
  refresh();
  timer = setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  // A token in the fragment (#token=...) logs in and is removed from the address at once:
  // the fragment never reaches a server, and this lets a script open the console.
  const m = location.hash.match(/^#token=(.+)$/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); login($("token").value); });
  $("logout").addEventListener("click", () => logout(""));
  if (sessionStorage.getItem(KEY)) login(sessionStorage.getItem(KEY)); else show(false);
});
