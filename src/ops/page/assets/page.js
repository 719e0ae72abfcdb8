"use strict";
// Polls /api/v1 once a second; everything shown comes from there. Text only goes in through
// textContent: tag values and reasons come from PLCs and MOM.
(() => {
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const ALARM = ["down", "unknown"], WARN = ["starved", "blocked"];
let lastOk = 0, failingSince = 0, lastSeq = 0, events = [], tick = 0;

async function get(path) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 3000);
  try {
    const r = await fetch("/api/v1/" + path, { headers, signal: ctl.signal, cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + ((await r.json().catch(() => ({}))).error || r.statusText));
    return await r.json();
  } finally { clearTimeout(t); }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}
function fill(id, rows) { $(id).replaceChildren(...rows); }
const pct = (x) => x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %";
const time = (iso) => iso ? new Date(iso).toLocaleTimeString() : "–";
function age(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 5400) return (s / 60).toFixed(0) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function stateClass(s) { return ALARM.includes(s) ? "alarm" : WARN.includes(s) ? "warn" : ""; }

function status(s) {
  document.title = s.cell + " · mes-edge";
  $("cell").textContent = s.cell;
  $("meta").textContent = `mes-edge ${s.version} · up ${age(s.uptime_s)} · store ${s.store_id || "?"} · ${s.store_path}`;
  fill("problems", s.problems.map((p) => el("li", p)));
  const m = s.machine;
  $("state").textContent = m.state;
  $("state").className = stateClass(m.state);
  $("state-since").textContent = "since " + time(m.since);
  $("state-detail").textContent = [m.stop_reason && "reason " + m.stop_reason,
    m.fault_code !== null && m.fault_code !== undefined && "fault " + m.fault_code,
    m.state_word !== null && m.state_word !== undefined && "word " + m.state_word].filter(Boolean).join(" · ");
  $("total-good").textContent = s.parts.good_total;
  $("total-scrap").textContent = s.parts.scrap_total;
  const o = s.order;
  $("order").hidden = !o; $("order-none").hidden = !!o;
  if (o) {
    $("order-id").textContent = o.order_id;
    $("order-state").textContent = o.state + (o.substate ? "/" + o.substate : "");
    $("order-state").className = o.state === "Interrupted" ? "warn" : "dim";
    $("order-material").textContent = o.material + (o.lot ? " · lot " + o.lot : "");
    $("order-good").textContent = o.good;
    $("order-scrap").textContent = o.scrap;
    $("order-target").textContent = o.target_quantity;
    const of = Math.max(o.target_quantity, o.good + o.scrap, 1);
    $("bar-good").style.width = (100 * o.good / of) + "%";
    $("bar-scrap").style.width = (100 * o.scrap / of) + "%";
    $("order-rate").textContent = (o.rate_per_hour ? Math.round(o.rate_per_hour) + " parts/h" : "rate: too early")
      + (o.expected_end ? " · expected end " + time(o.expected_end) : "");
  }
  oee("oee-order", o && o.oee);
  oee("oee-shift", s.shift && s.shift.oee, s.shift && s.shift.name);
  const warnings = [...((o && o.oee && o.oee.warnings) || []), ...((s.shift && s.shift.oee.warnings) || [])];
  fill("oee-warnings", warnings.map((w) => el("li", w.message)));
  fill("devices", s.devices.map((d) => row([d.name,
    el("td", d.connected ? "connected" : "disconnected", d.connected ? "" : "alarm"),
    d.last_good_read_age_s === null ? "never" : age(d.last_good_read_age_s) + " ago",
    el("td", d.errors, "num")])));
  const e = s.delivery.events, v = s.delivery.values;
  const old = e.oldest_undelivered_age_s;
  fill("delivery", [
    row(["events", el("td", e.connected ? "connected" : "disconnected", e.connected ? "" : "alarm"),
      el("td", e.depth ?? "–", "num"), el("td", old === null ? "–" : age(old), old > 60 ? "warn" : ""),
      el("td", e.refused_held || 0, e.refused_held ? "alarm" : "")]),
    row(["values", "", el("td", v.held ?? "–", "num"), "", el("td", v.dropped ? v.dropped + " dropped" : "0", v.dropped ? "warn" : "")]),
  ].concat(s.delivery.sparkplug ? [sparkplug(s.delivery.sparkplug)] : []));
}

// Refused, for Sparkplug: the host's commands and STATEs it did not take (the broker cannot
// refuse a publication under MQTT 3.1.1).
function sparkplug(p) {
  const old = p.oldest_undelivered_age_s, refused = p.commands_refused + p.states_refused;
  const host = p.primary_host_online === null ? "" : p.primary_host_online ? " · host online" : " · host offline";
  return row(["Sparkplug", el("td", (p.connected ? "connected" : "disconnected") + host,
      p.connected && p.primary_host_online !== false ? "" : "alarm"),
    el("td", p.depth ?? "–", "num"), el("td", old === null ? "–" : age(old), old > 60 ? "warn" : ""),
    el("td", refused, refused ? "warn" : "")]);
}

function oee(id, x, name) {
  const tds = $(id).querySelectorAll("td");
  const vals = x ? [x.availability, x.performance, x.quality, x.oee] : [null, null, null, null];
  vals.forEach((val, i) => { tds[i].textContent = pct(val); tds[i].className = val > 1 ? "warn" : ""; });
  if (name !== undefined) $(id).querySelector("th").textContent = "shift" + (name ? " " + name : "");
}

function tags(t) {
  fill("tags", t.tags.map((x) => row([x.device, x.tag,
    el("td", x.value === null ? "–" : typeof x.value === "number" ? num(x.value) : x.value, "num"),
    el("td", x.quality ?? "never read", x.quality ? "q-" + x.quality : "dim"),
    x.ts ? new Date(x.ts).toLocaleTimeString() : "–"])));
}

const num = (x) => +x.toPrecision(6);
// One sparkline a published value over the trend's window, drawn from the API's points.
function trends(r) {
  $("trends-box").hidden = !r.trends.length;
  $("trends-span").textContent = "up to the last " + r.window_s / 60 + " min";
  const W = 120, H = 24;
  fill("trends", r.trends.map((t) => {
    // Across what is known, up to the window: a runtime up for a minute draws that minute wide.
    const from = Math.max(r.now_ms - r.window_s * 1000, t.points.length ? t.points[0][0] : 0);
    const span = Math.max(r.now_ms - from, 1);
    const vs = t.points.map((p) => p[1]);
    const lo = Math.min(...vs), hi = Math.max(...vs);
    // A value is reported when it changes: while the readings are good, the last one holds now.
    const pts = vs.length && t.quality !== "bad" ? t.points.concat([[r.now_ms, vs[vs.length - 1]]]) : t.points;
    const svg = $("spark").content.firstElementChild.cloneNode(true);
    svg.querySelector("polyline").setAttribute("points", pts.map(([ts, v]) =>
      (W * Math.max(0, 1 - (r.now_ms - ts) / span)).toFixed(1) + ","
      + (hi > lo ? H - 2 - (H - 4) * (v - lo) / (hi - lo) : H / 2).toFixed(1)).join(" "));
    const cell = el("td");
    cell.append(svg);
    return row([t.device, t.tag, el("td", vs.length ? num(vs[vs.length - 1]) : "–", "num"), cell,
      el("td", vs.length ? num(lo) + " – " + num(hi) : "–", "num dim")]);
  }));
}

function summary(ev) {
  const d = (ev.event && ev.event.data) || {};
  switch (ev.type) {
    case "part_count": return `${d.quantity} ${d.counter}` + (d.order_id ? ` · ${d.order_id}` : "") + (d.reason ? ` · ${d.reason}` : "");
    case "machine_state": return `${d.previous || "–"} → ${d.state}` + (d.reason ? ` · ${d.reason}` : "");
    case "device_status": return `${d.device} ${d.status || d.state || ""}`;
    case "order_state": return `${d.order_id} ${d.command || ""} → ${d.state}`;
    case "job_response": return `${d.order_id} good ${d.good} scrap ${d.scrap}`;
    case "oee": return `${d.scope || ""} ${d.order_id || d.shift || ""} OEE ${pct(d.figures && d.figures.oee)}`;
    default: return JSON.stringify(d).slice(0, 120);
  }
}

function drawEvents() {
  const want = $("event-type").value;
  const shown = events.filter((e) => !want || e.type === want).slice(-100).reverse();
  fill("events", shown.map((e) => row([el("td", e.seq, "num"), time(e.time), e.type, summary(e),
    el("td", e.delivered ? "✓" : "waiting", e.delivered ? "dim" : "")])));
}

function addEvents(r) {
  const fresh = r.events.filter((e) => e.seq > lastSeq);
  if (fresh.length) lastSeq = fresh[fresh.length - 1].seq;
  events = events.concat(fresh).slice(-500);
  const sel = $("event-type"), have = new Set([...sel.options].map((o) => o.value));
  for (const t of new Set(events.map((e) => e.type))) if (!have.has(t)) sel.append(new Option(t, t));
  drawEvents();
}

function orders(r) {
  fill("orders", r.orders.slice().reverse().map((o) => row([o.order_id,
    el("td", o.state + (o.substate ? "/" + o.substate : ""), o.state === "Aborted" ? "warn" : ""),
    o.material, el("td", o.good, "num"), el("td", o.scrap, "num"), el("td", o.target_quantity, "num"),
    o.ended ? new Date(o.ended).toLocaleString() : ""])));
}

function timeline(t) {
  // From the first state known, so that a young store's bar is not a sliver.
  const start = Math.max(t.from_ms, Math.min(...t.intervals.map((i) => i.from_ms)));
  const span = Math.max(1, t.to_ms - start);
  fill("timeline", t.intervals.map((i) => {
    const to = i.to_ms ?? t.to_ms, from = Math.max(i.from_ms, start);
    const d = el("div", null, "s-" + i.state);
    d.style.width = (100 * Math.max(0, to - from) / span) + "%";
    d.title = `${i.state} ${new Date(from).toLocaleTimeString()}–${new Date(to).toLocaleTimeString()}` + (i.reason ? ` · ${i.reason}` : "");
    return d;
  }));
  $("timeline-span").textContent = `${new Date(start).toLocaleTimeString()} to ${new Date(t.to_ms).toLocaleTimeString()} (at most 4 h)`;
}

async function poll() {
  tick++;
  try {
    const filter = encodeURIComponent($("tag-filter").value.trim());
    const [s, t, e] = await Promise.all([get("status"), get("tags?filter=" + filter),
      get(`events?after=${lastSeq}&limit=${lastSeq ? 500 : 100}`)]);
    status(s); tags(t); addEvents(e);
    if (tick % 5 === 1) orders(await get("orders"));
    if (tick % 15 === 1) timeline(await get("timeline?hours=4"));
    if (tick % 2 === 1) trends(await get("trends"));
    lastOk = Date.now(); failingSince = 0;
    document.body.classList.remove("stale");
    $("down").hidden = true;
    $("live").textContent = "live · " + new Date(lastOk).toLocaleTimeString();
    $("live").className = "dim";
  } catch (err) {
    if (!failingSince) failingSince = Date.now();
    document.body.classList.add("stale");
    $("down").hidden = false;
    $("down").textContent = "The runtime is not answering (" + err.message + ") since "
      + new Date(failingSince).toLocaleTimeString()
      + (lastOk ? "; the values below are from " + new Date(lastOk).toLocaleTimeString() : "");
    $("live").textContent = "not answering";
    $("live").className = "alarm";
  }
  setTimeout(poll, 1000);
}
$("event-type").addEventListener("change", drawEvents);
poll();
})();
