// Gridmint's web console: a read-only view of what the coordinator's public API answers.
// No framework and no build step: pages are drawn with DOM calls (never innerHTML, so nothing
// a job or a provider wrote can run here), and redrawn on every pulse of /v1/events.
"use strict";

const DECIMALS = 9n;
const UNIT = 10n ** DECIMALS;

// ---- helpers -------------------------------------------------------------------------------

/** An element: h("a", {href: "#/"}, "text", child, ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.kind = body && body.error;
  }
}

async function api(path) {
  const resp = await fetch(path, { headers: { accept: "application/json" } });
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, body);
  }
  return resp.json();
}

/** Base units (a decimal string) as GRID, exactly. */
function grid(units) {
  if (units === undefined || units === null) return "–";
  let v = BigInt(units);
  const neg = v < 0n;
  if (neg) v = -v;
  const whole = v / UNIT;
  let frac = (v % UNIT).toString().padStart(Number(DECIMALS), "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${whole.toLocaleString("en-US")}${frac ? "." + frac : ""} GRID`;
}

function num(n) {
  return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US");
}

function when(ms) {
  if (!ms) return "–";
  const d = new Date(Number(ms));
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function short(id) {
  return id ? `${id.slice(0, 10)}…` : "–";
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

/** Basis points as a percentage: 3340 → "33.4%". */
function bps(n) {
  if (n === undefined || n === null) return "–";
  return `${(Number(n) / 100).toLocaleString("en-US", { maximumFractionDigits: 2 })}%`;
}

/** A length of time in ms, in its largest whole-ish unit: "7 d", "1.5 h", "30 s". */
function span(ms) {
  if (ms === undefined || ms === null) return "–";
  const units = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "min"], [1000, "s"]];
  for (const [size, unit] of units) {
    if (ms >= size) return `${(ms / size).toLocaleString("en-US", { maximumFractionDigits: 1 })} ${unit}`;
  }
  return `${num(ms)} ms`;
}

/** A time relative to the network's clock: "in 5 min" or "5 min ago". */
function relative(ms, now) {
  if (!ms || !now) return "";
  return ms >= now ? `in ${span(ms - now)}` : ago(ms, now);
}

/** part of whole (decimal strings of base units) as a percentage with one decimal. */
function share(part, whole) {
  const w = BigInt(whole || 0);
  if (w === 0n) return "–";
  const tenths = (BigInt(part || 0) * 1000n) / w;
  return `${(Number(tenths) / 10).toFixed(1)}%`;
}

function accountLink(id, providers) {
  if (!id) return "–";
  const isProvider = providers ? providers.has(id) : false;
  return h("a", { href: isProvider ? `#/providers/${id}` : `#/accounts/${id}`, class: "mono", title: id },
    short(id));
}

function providerLink(id) {
  return h("a", { href: `#/providers/${id}`, class: "mono", title: id }, short(id));
}

function card(label, value, sub, testid) {
  return h("div", { class: "card", "data-testid": testid },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    sub ? h("div", { class: "sub" }, sub) : null);
}

function table(headers, rows, testid) {
  return h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map((t) => {
      const [label, cls] = Array.isArray(t) ? t : [t, ""];
      return h("th", { class: cls }, label);
    }))),
    h("tbody", {}, rows.length ? rows : [h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "none"))]));
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function bar(pct) {
  const el = h("div", { class: "bar" });
  el.style.width = `${pct}%`;
  return el;
}

function progress(done, total, testid) {
  const pct = total > 0 ? Math.floor((done * 100) / total) : 0;
  return h("div", { class: "progress", "data-testid": testid, "data-percent": pct, title: `${done} of ${total}` },
    bar(pct), // (its width through the style object: the page's policy refuses style attributes)
    h("div", { class: "text" }, `${pct}% (${done}/${total})`));
}

/** A line chart of [x, y] points, with its last value in the title. */
function chart(title, points, unit, testid) {
  const w = 600, hgt = 120, pad = 4;
  const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none", role: "img" });
  svg.append(s("line", { x1: 0, y1: hgt - pad, x2: w, y2: hgt - pad, class: "axis" }));
  let last = "–";
  if (points.length >= 1) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    const y1 = Math.max(...ys, 1e-9);
    const pts = points.map(([x, y]) =>
      `${((x - x0) / (x1 - x0)) * (w - 2 * pad) + pad},${hgt - pad - (y / y1) * (hgt - 2 * pad)}`);
    if (points.length === 1) pts.push(`${w - pad},${pts[0].split(",")[1]}`);
    svg.append(s("polygon", { points: `${pad},${hgt - pad} ${pts.join(" ")} ${w - pad},${hgt - pad}`, class: "area" }));
    svg.append(s("polyline", { points: pts.join(" ") }));
    last = ys[ys.length - 1];
    last = Number.isInteger(last) ? num(last) : last.toFixed(2);
  }
  return h("div", { class: "card chart", "data-testid": testid },
    h("div", { class: "label" }, `${title}: ${last}${unit ? " " + unit : ""}`), svg);
}

function errorBox(e) {
  return h("div", { class: "error", "data-testid": "error" },
    e instanceof ApiError ? `${e.status} ${e.kind || ""}: ${e.message}` : String(e));
}

// ---- live pulse ----------------------------------------------------------------------------

const live = {
  pulse: null,
  // [time ms, pulse] for the charts, the last hour: what the coordinator kept (one every 5 s,
  // GET /v1/pulses), then each pulse of the stream.
  samples: [],
};

async function seed() {
  try {
    const kept = await api("/v1/pulses");
    const since = live.samples.length ? live.samples[0][0] : Infinity;
    live.samples.unshift(...kept.filter((p) => p.at < since).map((p) => [p.at, p.pulse]));
  } catch (_) { /* an older coordinator: the charts start now */ }
}

function connect() {
  const badgeEl = document.getElementById("live");
  const source = new EventSource("/v1/events");
  source.addEventListener("pulse", (ev) => {
    const pulse = JSON.parse(ev.data);
    live.pulse = pulse;
    const t = Date.now();
    live.samples.push([t, pulse]);
    while (live.samples.length && live.samples[0][0] < t - 3_600_000) live.samples.shift();
    badgeEl.textContent = "live";
    badgeEl.className = "live on";
    document.getElementById("footer-chain").textContent =
      `block ${num(pulse.block_height)} · ${num(pulse.log_length)} entries`;
    if (current.live) redraw();
  });
  source.onerror = () => {
    badgeEl.textContent = "reconnecting";
    badgeEl.className = "live off";
  };
}

// ---- pages ---------------------------------------------------------------------------------

async function networkPage() {
  const [status, net, chainView, validators, providers] = await Promise.all([
    api("/v1/status"), api("/v1/network"), api("/v1/chain"), api("/v1/chain/validators"),
    api("/v1/providers?limit=1000"),
  ]);
  const p = live.pulse;
  const recent = chainView.height > 0
    ? await api(`/v1/chain/blocks?from=${Math.max(1, chainView.height - 4)}&limit=5`) : [];
  const byState = p ? p.providers : {};
  const regions = new Map();
  for (const pr of providers) {
    const r = regions.get(pr.spec.region) || { active: 0, other: 0, slots: 0, busy: 0 };
    if (pr.status === "active") { r.active += 1; r.slots += pr.spec.slots; r.busy += Math.min(pr.running, pr.spec.slots); }
    else r.other += 1;
    regions.set(pr.spec.region, r);
  }
  // Tasks per second from completed runs between pulses; queue and busy slots as they were.
  const rate = [], queue = [], busy = [];
  for (let i = 0; i < live.samples.length; i++) {
    const [t, q] = live.samples[i];
    queue.push([t, q.tasks_queued]);
    busy.push([t, q.slots_busy]);
    if (i > 0) {
      const [t0, q0] = live.samples[i - 1];
      const dt = (t - t0) / 1000;
      if (dt > 0) rate.push([t, Math.max(0, (q.runs_completed + q.runs_failed - q0.runs_completed - q0.runs_failed) / dt)]);
    }
  }
  const vset = validators.validators || [];
  return h("div", { "data-testid": "network" },
    h("h1", {}, `Network ${net.chain_id}`),
    h("div", { class: "cards" },
      card("Providers active", num(byState.active ?? status.providers_active),
        `${num(byState.suspended ?? 0)} suspended · ${num(byState.lost ?? 0)} lost · ${num(byState.left ?? 0)} left`, "card-providers"),
      card("Slots busy", p ? `${num(p.slots_busy)} / ${num(p.slots_total)}` : "–", "of the providers counted on", "card-slots"),
      card("Tasks queued", num(p ? p.tasks_queued : status.tasks_queued), `${num(p ? p.runs_in_flight : 0)} runs in flight`, "card-queue"),
      card("Jobs", num(status.jobs_total), `${num(status.jobs_unfinished)} unfinished`, "card-jobs"),
      card("Runs", p ? num(p.runs_completed) : "–", p ? `${num(p.runs_failed)} failed · ${num(p.slashes)} slashes` : "", "card-runs"),
      card("Block height", num(chainView.height), `${num(chainView.log_length)} entries`, "card-height"),
      card("Role", status.role || "coordinator", `rules ${net.rules} · term ${status.term}`, "card-role")),
    h("div", { class: "charts" },
      chart("Tasks per second", rate, "", "chart-rate"),
      chart("Queue length", queue, "tasks", "chart-queue"),
      chart("Busy slots", busy, "", "chart-busy")),
    h("p", { class: "muted" }, "The last hour: one point every 5 s from the coordinator, then every change (at most one a second)."),
    h("div", { class: "split" },
      h("div", {},
        h("h2", {}, "Providers by region"),
        table(["Region", ["Active", "num"], ["Other", "num"], ["Slots busy", "num"]],
          [...regions.entries()].sort().map(([region, r]) => h("tr", {},
            h("td", {}, region), h("td", { class: "num" }, num(r.active)), h("td", { class: "num" }, num(r.other)),
            h("td", { class: "num" }, `${num(r.busy)} / ${num(r.slots)}`))), "regions")),
      h("div", {},
        h("h2", {}, "Validators"),
        vset.length
          ? table(["Validator", ["Power", "num"], "Stake", "Address"], vset.map((v) => h("tr", {},
            h("td", {}, accountLink(v.account), v.account === status.leader ? [" ", badge("leader", "ok")] : null),
            h("td", { class: "num" }, num(v.power)), h("td", {}, grid(v.stake)), h("td", { class: "mono" }, v.address))), "validators")
          : h("p", {}, "A single coordinator signs the blocks: ", accountLink(chainView.validator), "."),
        h("h2", {}, "Latest blocks"),
        blocksTable(recent.slice().reverse(), status.clock || status.now))));
}

function blocksTable(blocks, now) {
  return table([["Height", "num"], "Time", ["Entries", "num"], "Validator", "State hash"], blocks.map((b) => h("tr", {},
    h("td", { class: "num" }, h("a", { href: `#/blocks/${b.header.height}`, "data-testid": `block-link-${b.header.height}` }, num(b.header.height))),
    h("td", { title: when(b.header.time) }, now ? ago(b.header.time, now) : when(b.header.time)),
    h("td", { class: "num" }, num(b.header.last_seq - b.header.first_seq + 1)),
    h("td", {}, accountLink(b.header.validator)),
    h("td", { class: "mono" }, short(b.header.state_hash)))), "blocks");
}

function jobRow(j) {
  return h("tr", { "data-testid": `job-row-${j.id}` },
    h("td", { class: "num" }, h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)),
    h("td", {}, badge(j.status)),
    h("td", {}, progress(j.tasks_done, j.tasks_total)),
    h("td", {}, accountLink(j.owner)),
    h("td", { class: "num" }, num(j.fuel_used)),
    h("td", { class: "num" }, grid(j.escrow.paid)),
    h("td", {}, when(j.submitted_at)));
}

async function jobsPage(params) {
  const before = params.get("before");
  const owner = params.get("owner");
  const page = await api(`/v1/jobs?limit=50${before ? `&before=${encodeURIComponent(before)}` : ""}${owner ? `&owner=${encodeURIComponent(owner)}` : ""}`);
  return h("div", { "data-testid": "jobs" },
    h("h1", {}, owner ? ["Jobs of ", accountLink(owner)] : "Jobs"),
    table([["Job", "num"], "Status", "Progress", "Owner", ["Fuel", "num"], ["Paid", "num"], "Submitted"],
      page.jobs.map(jobRow), "jobs-table"),
    h("div", { class: "pager" },
      before ? h("a", { href: "#/jobs" }, "newest") : null,
      page.next_before ? h("a", { href: `#/jobs?before=${page.next_before}${owner ? `&owner=${owner}` : ""}` }, "older →") : null));
}

function runOutcome(run) {
  const o = run.outcome;
  if (typeof o === "string") return badge(o, o === "failed" || o === "abandoned" ? "bad" : o);
  if (o.returned) return h("span", {}, badge("returned", "ok"), " ", h("span", { class: "mono", title: o.returned.output_hash }, short(o.returned.output_hash)));
  const [k] = Object.keys(o);
  return badge(k, "warn");
}

async function jobPage(id, params) {
  const from = Number(params.get("tasks_from") || 0);
  const job = await api(`/v1/jobs/${encodeURIComponent(id)}?tasks=true&tasks_from=${from}&tasks_limit=200`);
  const outputUrl = `/v1/jobs/${job.id}/output`;
  let output = null;
  if (job.status === "completed" && job.output && !job.private) {
    const head = await fetch(outputUrl, { method: "HEAD" }).catch(() => null);
    const kind = head && head.ok ? head.headers.get("content-type") || "" : "";
    output = h("div", { class: "panel", "data-testid": "job-output" },
      h("h2", {}, "Output"),
      h("p", {}, h("a", { href: outputUrl, download: `job-${job.id}.out`, "data-testid": "output-download" }, "download"),
        kind.startsWith("image/") ? [" · ", h("a", { href: outputUrl, target: "_blank", "data-testid": "output-open" }, "open the image")] : null,
        ` (${job.output.length} part${job.output.length === 1 ? "" : "s"})`),
      kind.startsWith("image/") ? h("img", { class: "output", src: outputUrl, alt: `output of job ${job.id}`, "data-testid": "output-image" }) : null);
  } else if (job.private) {
    output = h("p", { class: "muted" }, "A private job: its output is sealed to its requester (gridmint job results).");
  }
  const e = job.energy;
  const tasks = job.tasks || [];
  return h("div", { "data-testid": "job" },
    h("h1", {}, `Job #${job.id} `, badge(job.status)),
    job.reason ? h("div", { class: "error" }, job.reason) : null,
    job.warning ? h("div", { class: "warning", "data-testid": "job-warning" }, job.warning) : null,
    progress(job.tasks_done, job.tasks_total, "job-progress"),
    h("div", { class: "split" },
      h("div", { class: "panel" }, facts([
        ["Owner", accountLink(job.owner)],
        ["Submitted", when(job.submitted_at)],
        ["Finished", when(job.finished_at)],
        ["Deadline", when(job.deadline)],
        ["Tasks", `${num(job.tasks_done)} done · ${num(job.tasks_running)} running · ${num(job.tasks_queued)} queued of ${num(job.tasks_total)}`],
        ["Runs", `${num(job.executions)} (${job.tasks_done ? (job.executions / job.tasks_done).toFixed(2) : "–"} per task)`],
        ["Verification", typeof job.redundancy === "string" ? job.redundancy : JSON.stringify(job.redundancy)],
        ["Fuel", num(job.fuel_used)],
        job.gpu_class ? ["GPU class", job.gpu_class] : null,
        job.reopened ? ["Reopened", num(job.reopened)] : null,
        job.corrected ? ["Corrected", num(job.corrected)] : null,
      ])),
      h("div", { class: "panel" }, facts([
        ["Locked", grid(job.escrow.locked)],
        ["Paid (fees incl.)", h("span", { "data-testid": "job-paid" }, grid(job.escrow.paid))],
        ["Fees", grid(job.escrow.fees)],
        ["Refunded", grid(job.escrow.refunded)],
        job.storage ? ["Storage deposit", `${grid(job.storage.deposit)}${job.storage.released_at ? " (released)" : ""}`] : null,
        e ? ["Energy", `${(e.millijoules / 3.6e9).toPrecision(3)} kWh, ${(e.co2e_micrograms / 1e6).toPrecision(3)} g CO₂e (${num(e.runs)} runs, ${e.measured ? `${num(e.measured)} measured` : "estimated"})`] : null,
        job.final_at ? ["Final at", when(job.final_at)] : null,
        ["Per provider", h("span", {}, Object.entries(job.tasks_per_provider).map(([p, n], i) => [i ? ", " : "", providerLink(p), ` ${n}`]))],
      ]))),
    output,
    h("h2", {}, `Tasks ${tasks.length ? `${from}–${from + tasks.length - 1}` : ""}`),
    table([["Task", "num"], "State", "Runs (provider, outcome)", ["Fuel", "num"], "Failures"], tasks.map((t) => h("tr", {},
      h("td", { class: "num" }, t.task.index),
      h("td", {}, badge(t.state)),
      h("td", {}, t.runs.map((r) => h("div", {}, providerLink(r.provider), " ", runOutcome(r)))),
      h("td", { class: "num" }, num(t.fuel_used)),
      h("td", {}, t.failures ? `${t.failures}: ${t.last_error || ""}` : "–"))), "tasks-table"),
    h("div", { class: "pager" },
      from > 0 ? h("a", { href: `#/jobs/${job.id}?tasks_from=${Math.max(0, from - 200)}` }, "← earlier tasks") : null,
      job.tasks_next !== undefined ? h("a", { href: `#/jobs/${job.id}?tasks_from=${job.tasks_next}` }, "later tasks →") : null));
}

async function providersPage() {
  const providers = await api("/v1/providers?limit=1000");
  return h("div", { "data-testid": "providers" },
    h("h1", {}, `Providers (${providers.length})`),
    table(["Provider", "Status", "Region", ["Slots", "num"], ["Reputation", "num"], "Trusted", ["Bonded", "num"], ["Earned", "num"], ["Slashes", "num"]],
      providers.map((p) => h("tr", { "data-testid": `provider-row-${p.id}` },
        h("td", {}, providerLink(p.id)),
        h("td", {}, badge(p.suspended && p.suspended.length ? "suspended" : p.status)),
        h("td", {}, p.spec.region),
        h("td", { class: "num" }, `${num(p.running)} / ${num(p.spec.slots)}`),
        h("td", { class: "num" }, num(p.reputation.score)),
        h("td", {}, p.trusted ? "yes" : "no"),
        h("td", { class: "num" }, grid(p.bonded)),
        h("td", { class: "num" }, grid(p.stats.earned)),
        h("td", { class: "num" }, num(p.stats.times_slashed)))), "providers-table"));
}

/** All of an account's history (newest first), up to `max` items. */
async function history(id, max) {
  const items = [];
  let before = null;
  while (items.length < max) {
    const page = await api(`/v1/accounts/${id}/history?limit=500${before ? `&before=${before}` : ""}`);
    items.push(...page.items);
    if (!page.next_before) break;
    before = page.next_before;
  }
  return items;
}

function eventSummary(ev, self) {
  const amount = ev.amount !== undefined ? grid(ev.amount) : "";
  switch (ev.event) {
    case "task_paid": return [`paid for task ${ev.task.job}/${ev.task.index}: `, amount, ` (fee ${grid(ev.fee)})`];
    case "transferred": return ev.from === self ? ["sent ", amount, " to ", accountLink(ev.to)] : ["received ", amount, " from ", accountLink(ev.from)];
    case "slashed": return ["slashed ", grid(ev.amount), ` — ${JSON.stringify(ev.evidence)}`];
    default: return [ev.event.replaceAll("_", " "), amount ? `: ${amount}` : "", ev.job !== undefined ? ` (job ${ev.job})` : ""];
  }
}

function historyTable(items, self) {
  return table([["Entry", "num"], "Time", "Event"], items.slice(0, 200).map((i) => h("tr", {},
    h("td", { class: "num" }, num(i.seq)),
    h("td", {}, when(i.time)),
    h("td", {}, eventSummary(i.event, self)))), "history-table");
}

async function providerPage(id) {
  // (one page, 500 items: the page is redrawn on every pulse)
  const [p, items, leased] = await Promise.all([
    api(`/v1/providers/${encodeURIComponent(id)}`), history(id, 500),
    api(`/v1/reservations?provider=${encodeURIComponent(id)}`)]);
  // Its leases (rules 26): the slots it holds for requesters' reservations.
  const leases = leased.flatMap((r) => r.leases.filter((l) => l.provider === id).map((l) => [r, l]));
  // Earnings over time: the running sum of its task payments in the history read, oldest first
  // (counted from what it had earned before them, so the line ends at its total).
  const paid = items.filter((i) => i.event.event === "task_paid" && i.event.provider === id).reverse();
  let sum = BigInt(p.stats.earned) - paid.reduce((a, i) => a + BigInt(i.event.amount), 0n);
  if (sum < 0n) sum = 0n;
  const points = paid.map((i) => { sum += BigInt(i.event.amount); return [i.time, Number(sum) / 1e9]; });
  const slashes = items.filter((i) => i.event.event === "slashed" && i.event.provider === id);
  return h("div", { "data-testid": "provider" },
    h("h1", {}, "Provider ", h("span", { class: "mono" }, short(p.id)), " ", badge(p.suspended && p.suspended.length ? "suspended" : p.status)),
    h("div", { class: "cards" },
      card("Earned", h("span", { "data-testid": "provider-earned" }, grid(p.stats.earned)), `${num(p.stats.tasks_completed)} tasks`, "card-earned"),
      card("Reputation", num(p.reputation.score), `${num(p.reputation.verified)} verified · ${num(p.reputation.rejected)} rejected`, "card-reputation"),
      card("Trusted", p.trusted ? "yes" : "no", `audits passed ${num(p.audits_passed)} · next audit ${(p.audit_bps / 100).toFixed(1)}%`, "card-trusted"),
      card("Stake", grid(p.bonded), `${num(p.stats.times_slashed)} slashes, ${grid(p.stats.slashed)}`, "card-stake")),
    h("div", { class: "charts" }, chart("Earnings over time", points, "GRID", "chart-earnings")),
    h("div", { class: "split" },
      h("div", { class: "panel" }, facts([
        ["Id", h("span", { class: "mono" }, p.id)],
        ["Account", h("a", { href: `#/accounts/${p.id}` }, "balance and history")],
        ["Registered", when(p.registered_at)],
        ["Region", p.spec.region],
        ["Slots", `${num(p.running)} busy of ${num(p.spec.slots)} (${num(p.spec.cores)} cores, ${(p.spec.memory_bytes / 2 ** 30).toFixed(1)} GiB)`],
        ["GPU", p.spec.gpu || "none"],
        p.gpu_class ? ["GPU class", h("span", { "data-testid": "provider-gpu-class" }, `${p.gpu_class} (proven)`)] : null,
        p.gpu_class_pending ? ["GPU class", h("span", { "data-testid": "provider-gpu-class" }, `${p.gpu_class_pending} (claimed: waiting for a member's check)`)] : null,
        ["Benchmark", num(p.spec.benchmark_score)],
        ["Price per fuel", `${p.spec.price_per_fuel} base units`],
        p.spec.operator ? ["Operator", accountLink(p.spec.operator)] : null,
        p.grams_per_kwh !== undefined ? ["Carbon", `${p.grams_per_kwh} g CO₂e per kWh`] : null,
        p.backing ? ["Backing", `${grid(p.backing.delegated)} from ${num(p.backing.delegators)} delegator(s), commission ${p.backing.commission_bps / 100}%`] : null,
        p.backing ? ["Delegators' yield", `${grid(p.backing.rewards_paid)} paid; realised ${p.backing.return_day_bps === undefined ? "–" : p.backing.return_day_bps / 100 + "%"} over a day, ${p.backing.return_week_bps === undefined ? "–" : p.backing.return_week_bps / 100 + "%"} over a week`] : null,
        leases.length ? ["Leased", h("span", { "data-testid": "provider-leases" }, leases.map(([r, l]) =>
          `${num(l.slots)} slot(s) to reservation ${r.id} (${grid(r.price_per_slot)} a slot a period, period ${num(l.period + 1)} of ${num(r.periods)})`).join("; "))] : null,
        p.suspended && p.suspended.length ? ["Suspended", p.suspended.join(", ")] : null,
      ])),
      h("div", { class: "panel" },
        h("h2", {}, "Slashes"),
        slashes.length
          ? table(["Entry", "Amount", "Evidence"], slashes.map((i) => h("tr", {},
            h("td", {}, h("a", { href: `#/entries/${i.seq}` }, num(i.seq))), h("td", {}, grid(i.event.amount)),
            h("td", {}, h("details", {}, h("summary", {}, Object.keys(i.event.evidence || {})[0] || "evidence"), h("pre", {}, JSON.stringify(i.event.evidence, null, 2)))))), "slashes")
          : h("p", { class: "muted", "data-testid": "no-slashes" }, "Never slashed."))),
    h("h2", {}, "History"),
    historyTable(items, id));
}

async function accountPage(id) {
  const [a, items] = await Promise.all([api(`/v1/accounts/${encodeURIComponent(id)}`), history(id, 500)]);
  const b = a.backing;
  return h("div", { "data-testid": "account" },
    h("h1", {}, "Account ", h("span", { class: "mono" }, short(a.id))),
    h("div", { class: "cards" },
      card("Balance", grid(a.balance), `nonce ${a.nonce}`, "card-balance"),
      card("Bonded", grid(a.bonded), a.unbonding.length ? `${a.unbonding.length} unbonding` : "", "card-bonded"),
      card("In escrow", grid(a.in_escrow), "of unfinished jobs", "card-escrow"),
      card("Storage deposits", grid(a.in_storage), "", "card-storage"),
      card("Reserved", grid(a.in_reservations || "0"), "prepaid periods of its reservations", "card-reserved")),
    h("p", {}, h("span", { class: "mono" }, a.id), " · ", h("a", { href: `#/jobs?owner=${a.id}` }, "its jobs")),
    b ? h("div", { class: "panel", "data-testid": "account-backing" },
      h("p", {}, `Backed by ${num(b.delegators)} delegator${b.delegators === 1 ? "" : "s"}: `, grid(b.delegated),
        ` delegated, commission ${bps(b.commission_bps)}.`),
      facts([
        ["Own stake", grid(b.own)],
        ["Unbonding", grid(b.unbonding)],
        ["Paid to delegators", grid(b.rewards_paid)],
        ["Commission earned", grid(b.commission_earned)],
        ["Slashed from delegators", grid(b.slashed)],
        ["Realised return", `${b.return_day_bps === undefined ? "–" : bps(b.return_day_bps)} over a day, ${b.return_week_bps === undefined ? "–" : bps(b.return_week_bps)} over a week`],
      ])) : null,
    h("h2", {}, "History"),
    historyTable(items, id));
}

async function chainPage(params) {
  const chainView = await api("/v1/chain");
  const top = Number(params.get("to") || chainView.height);
  const from = Math.max(1, top - 24);
  const blocks = top > 0 ? await api(`/v1/chain/blocks?from=${from}&limit=${top - from + 1}`) : [];
  const status = await api("/v1/status");
  return h("div", { "data-testid": "chain" },
    h("h1", {}, "Chain"),
    h("div", { class: "panel" }, facts([
      ["Height", num(chainView.height)],
      ["Tip", h("span", { class: "mono" }, chainView.tip_hash)],
      ["Genesis", h("span", { class: "mono" }, chainView.genesis_hash)],
      ["Entries", `${num(chainView.log_length)} (${num(chainView.unsealed)} not sealed yet)`],
      ["Signed by", accountLink(chainView.validator)],
    ])),
    h("h2", {}, "Blocks"),
    blocksTable(blocks.slice().reverse(), status.clock || status.now),
    h("div", { class: "pager" }, from > 1 ? h("a", { href: `#/chain?to=${from - 1}` }, "older →") : null));
}

// ---- governance and validators (rules 25–27) -----------------------------------------------

function proposalStatus(status) {
  if (typeof status === "string") {
    const kind = { voting: "running", passed: "ok", vetoed: "bad" }[status];
    return badge(status, kind || "");
  }
  const [k] = Object.keys(status || {});
  const v = status[k];
  if (k === "scheduled") return badge("scheduled", "queued");
  const b = badge(k, k === "failed" || k === "rejected" ? "bad" : "warn");
  return typeof v === "string" && v ? h("span", { title: v }, b, " ", h("span", { class: "muted" }, v)) : b;
}

function govParamsText(g) {
  return `deposit ${grid(g.min_deposit)}, voting ${span(g.voting_period_ms)}, quorum ${bps(g.quorum_bps)}, ` +
    `threshold ${bps(g.threshold_bps)}, veto ${bps(g.veto_bps)}`;
}

function stakingParamsText(st) {
  return `minimum delegation ${grid(st.min_delegation)}, commission at most ${bps(st.max_commission_bps)} ` +
    `(rising by at most ${bps(st.commission_step_bps)} every ${span(st.commission_period_ms)}), ` +
    `validators' share of fees ${bps(st.validator_fee_bps)} paid every ${span(st.validator_payout_every_ms)}`;
}

function schedulingParamsText(sc) {
  return `queue ${num(sc.queue_per_slot)} per slot, prefetch ${span(sc.prefetch_ms)}, hold ${span(sc.hold_ms)} ` +
    `at a margin of ${num(sc.hold_margin_pct)}%, urgent within ${span(sc.urgent_ms)}, timeout grace ${span(sc.timeout_grace_ms)}`;
}

function validatorChangeSummary(c) {
  if (c && c.add) {
    const v = c.add;
    return ["add validator ", accountLink(v.account), ` (power ${num(v.power)}${v.address ? `, ${v.address}` : ""})`];
  }
  if (c && c.remove) return ["remove validator ", accountLink(c.remove)];
  return JSON.stringify(c);
}

/** One change a proposal makes (engine::ParamChange, externally tagged), in words. */
function changeSummary(c) {
  if (typeof c === "string") return c.replaceAll("_", " ");
  const [k] = Object.keys(c || {});
  const v = c[k];
  switch (k) {
    case "fee_bps": return `protocol fee → ${bps(v.bps)}`;
    case "min_stake": return `minimum stake → ${grid(v.amount)}`;
    case "action_fee": return `fee per action → ${grid(v.amount)}`;
    case "unbonding_delay": return `unbonding delay → ${span(v.ms)}`;
    case "faucet_amount": return `faucet → ${grid(v.amount)}`;
    case "slash": return `slash ${bps(v.fraction_bps)} of stake (requester ${bps(v.requester_bps)}, treasury ${bps(v.treasury_bps)})`;
    case "verification": return `verification: trust after ${num(v.trust_after)}, spot checks ${bps(v.spot_check_bps)}, ` +
      `quorum weight ${num(v.quorum_weight)}, trusted weight ${num(v.trusted_weight)}, at most ${num(v.max_results)} results`;
    case "governance": return `governance: ${govParamsText(v)}`;
    case "staking": return `staking: ${stakingParamsText(v)}`;
    case "scheduling": return `scheduling: ${schedulingParamsText(v)}`;
    case "treasury_spend": return ["pay ", grid(v.amount), " from the treasury to ", accountLink(v.to)];
    case "validator": return validatorChangeSummary(v);
    default: return JSON.stringify(c);
  }
}

function changesCell(changes) {
  if (!changes || !changes.length) return "–";
  if (changes.length === 1) return changeSummary(changes[0]);
  return h("ul", { class: "changes" }, changes.map((c) => h("li", {}, changeSummary(c))));
}

/** Turnout of all voting power, then each option's share of the votes cast. */
function tallyCell(t) {
  if (!t) return "–";
  const voted = [t.yes, t.no, t.abstain, t.veto].reduce((a, x) => a + BigInt(x || 0), 0n);
  const turnout = `turnout ${share(voted, t.total)}`;
  if (voted === 0n) return h("span", { class: "muted" }, `no votes yet (${turnout})`);
  return h("span", { title: `of ${grid(t.total)} voting power` },
    `yes ${share(t.yes, voted)} · no ${share(t.no, voted)} · abstain ${share(t.abstain, voted)} · veto ${share(t.veto, voted)}`,
    h("br"), h("span", { class: "muted" }, turnout));
}

function validatorsSection(view, status) {
  const now = status.clock || status.now;
  const vs = view.validators || [];
  const st = view.staking;
  const total = vs.reduce((a, v) => a + Number(v.power), 0);
  const due = st ? (BigInt(view.fees_collected || 0) * BigInt(st.validator_fee_bps)) / 10_000n : null;
  return h("div", { "data-testid": "validators-section" },
    h("h2", {}, "Validators"),
    vs.length
      ? table(["Validator", ["Power", "num"], ["Own stake", "num"], ["Delegated", "num"], ["Commission", "num"], ["Earned", "num"], "Address"],
        vs.map((v) => {
          const b = v.backing;
          return h("tr", { "data-testid": `validator-row-${v.account}` },
            h("td", {}, accountLink(v.account), v.account === status.leader ? [" ", badge("leader", "ok")] : null),
            h("td", { class: "num" }, num(v.power), total ? h("span", { class: "muted" }, ` (${(100 * Number(v.power) / total).toFixed(1)}%)`) : null),
            h("td", { class: "num" }, grid(b ? b.own : v.bonded)),
            h("td", { class: "num" }, b ? [grid(b.delegated), h("br"), h("span", { class: "muted" }, `${num(b.delegators)} delegator(s)`)] : "–"),
            h("td", { class: "num" }, b ? bps(b.commission_bps) : "–"),
            h("td", { class: "num" }, grid(v.earned)),
            h("td", { class: "mono" }, v.address));
        }), "validators-table")
      : h("p", { class: "muted", "data-testid": "no-validators" },
        "One coordinator: no validator set. It signs every block itself and earns no share of the fees."),
    h("div", { class: "panel", "data-testid": "validator-fees" }, facts([
      ["Fees collected since the last payout", grid(view.fees_collected)],
      ["Validators' share", !st ? "none (before rules 27 validators earn nothing)"
        : vs.length ? [bps(st.validator_fee_bps), " of the fees: ", grid(due.toString()), " so far"]
          : `${bps(st.validator_fee_bps)} of the fees, but with no validator set it stays with the treasury`],
      ["Next payout", nextPayout(view, vs, now)],
    ])));
}

/** When the validators are paid next: due at the first entry at or after `next_payout_at` once
 * fees were collected (engine `validator_payout_due`), never without a validator set. */
function nextPayout(view, vs, now) {
  if (!view.staking || view.next_payout_at === undefined || view.next_payout_at === null) return "–";
  if (!vs.length) return "never: no validator set to pay";
  const at = view.next_payout_at;
  const fees = BigInt(view.fees_collected || 0) > 0n;
  if (now && at <= now) return fees ? "due now (at the next entry)" : "at the first entry after a fee is collected";
  return `${when(at)} (${relative(at, now)})${fees ? "" : ", if a fee is collected by then"}`;
}

async function governancePage() {
  const [gov, vals, status] = await Promise.all([api("/v1/proposals"), api("/v1/validators"), api("/v1/status")]);
  const now = status.clock || status.now;
  const proposals = gov.proposals || [];
  const scheduled = proposals.filter((p) => p.proposal.status && p.proposal.status.scheduled)
    .sort((a, b) => (a.effective_at ?? a.proposal.status.scheduled.at) - (b.effective_at ?? b.proposal.status.scheduled.at));
  const queued = gov.validator_changes_queued || [];
  const g = gov.params;
  const st = gov.staking;
  return h("div", { "data-testid": "governance" },
    h("h1", {}, "Governance"),
    h("div", { class: "split" },
      h("div", { class: "panel", "data-testid": "gov-params" },
        h("h2", {}, "Governance parameters"),
        facts([
          ["Minimum deposit", grid(g.min_deposit)],
          ["Voting period", span(g.voting_period_ms)],
          ["Quorum", bps(g.quorum_bps)],
          ["Threshold", bps(g.threshold_bps)],
          ["Veto", bps(g.veto_bps)],
        ])),
      h("div", { class: "panel", "data-testid": "staking-params" },
        h("h2", {}, "Staking parameters"),
        st ? facts([
          ["Minimum delegation", grid(st.min_delegation)],
          ["Maximum commission", bps(st.max_commission_bps)],
          ["Commission rises", `by at most ${bps(st.commission_step_bps)} every ${span(st.commission_period_ms)}`],
          ["Validators' share of fees", bps(st.validator_fee_bps)],
          ["Paid every", span(st.validator_payout_every_ms)],
        ]) : h("p", { class: "muted" }, "None on this network's rules (before rules 27).")),
      gov.scheduling ? h("div", { class: "panel", "data-testid": "scheduling-params" },
        h("h2", {}, "Scheduler"),
        facts([
          ["Local queue", `${num(gov.scheduling.queue_per_slot)} tasks per slot`],
          ["Prefetch", span(gov.scheduling.prefetch_ms)],
          ["Hold for a better provider", `${span(gov.scheduling.hold_ms)} at a ${num(gov.scheduling.hold_margin_pct)}% margin`],
          ["Urgent within", span(gov.scheduling.urgent_ms)],
          ["Timeout grace", span(gov.scheduling.timeout_grace_ms)],
        ])) : null),
    h("h2", {}, "Schedule"),
    h("div", { class: "panel", "data-testid": "schedule" },
      scheduled.length || queued.length ? [
        scheduled.length ? h("ul", { class: "schedule" }, scheduled.map((p) => {
          const at = p.effective_at ?? p.proposal.status.scheduled.at;
          return h("li", { "data-testid": `scheduled-${p.proposal.id}` },
            h("strong", {}, when(at)), ` (${relative(at, now)}): proposal #${p.proposal.id} “${p.proposal.title}” — `,
            changesCell(p.proposal.changes));
        })) : null,
        queued.length ? [
          h("p", {}, "Validator-set changes queued (the leader makes one per block):"),
          h("ol", { "data-testid": "validator-changes" }, queued.map((c) => h("li", {}, validatorChangeSummary(c)))),
        ] : null,
      ] : h("p", { class: "muted" }, "Nothing scheduled: no passed proposal is waiting to take effect and no validator-set change is queued.")),
    h("h2", {}, `Proposals (${proposals.length})`),
    table([["Id", "num"], "Title", "Status", "Changes", "Tally", "Voting ends", "Effective"], proposals.map((p) => {
      const pr = p.proposal;
      return h("tr", { "data-testid": `proposal-row-${pr.id}` },
        h("td", { class: "num" }, `#${pr.id}`),
        h("td", {}, pr.title, h("br"), h("span", { class: "muted" }, "by ", accountLink(pr.proposer), ", deposit ", grid(pr.deposit))),
        h("td", {}, proposalStatus(pr.status)),
        h("td", {}, changesCell(pr.changes)),
        h("td", {}, tallyCell(p.tally)),
        h("td", { title: relative(pr.voting_end, now) }, when(pr.voting_end)),
        h("td", {}, p.effective_at ? [when(p.effective_at), pr.status === "voting" ? h("span", { class: "muted" }, " if passed") : null]
          : pr.status === "passed" ? "in force" : "–"));
    }), "proposals-table"),
    validatorsSection(vals, status));
}

async function validatorsPage() {
  const [vals, status] = await Promise.all([api("/v1/validators"), api("/v1/status")]);
  return h("div", { "data-testid": "validators" }, validatorsSection(vals, status));
}

function entryRow(e) {
  return h("tr", { "data-testid": `entry-${e.seq}` },
    h("td", { class: "num" }, h("a", { href: `#/entries/${e.seq}` }, num(e.seq))),
    h("td", {}, when(e.time)),
    h("td", {}, badge(e.kind, "")),
    h("td", {}, e.name),
    h("td", {}, e.signer ? accountLink(e.signer) : "–"),
    h("td", {}, h("details", {}, h("summary", {}, "JSON"), h("pre", {}, JSON.stringify(e.input, null, 2)))));
}

async function blockPage(height) {
  const [block] = await api(`/v1/chain/blocks?from=${encodeURIComponent(height)}&limit=1`);
  if (!block || String(block.header.height) !== String(height)) throw new ApiError(404, { error: "not_found", detail: `no block at height ${height}` });
  const hd = block.header;
  const count = hd.last_seq - hd.first_seq + 1;
  const entries = await api(`/v1/chain/inputs?from=${hd.first_seq}&limit=${Math.min(count, 200)}`);
  return h("div", { "data-testid": "block" },
    h("h1", {}, `Block ${num(hd.height)}`),
    h("div", { class: "panel" }, facts([
      ["Time", when(hd.time)],
      ["Entries", `${num(hd.first_seq)} – ${num(hd.last_seq)} (${num(count)})`],
      ["Previous", hd.height > 1 ? h("a", { href: `#/blocks/${hd.height - 1}`, class: "mono" }, hd.prev_hash) : h("span", { class: "mono" }, `${hd.prev_hash} (genesis)`)],
      ["Commands root", h("span", { class: "mono" }, hd.commands_root)],
      ["State hash", h("span", { class: "mono" }, hd.state_hash)],
      ["Validator", accountLink(hd.validator)],
      ["Signature", h("span", { class: "mono" }, block.signature)],
    ])),
    h("p", {}, h("a", { href: `#/blocks/${hd.height + 1}` }, "next block →")),
    h("h2", {}, count > 200 ? `Entries (the first 200 of ${count})` : "Entries"),
    table([["Seq", "num"], "Time", "Kind", "What", "Signer", ""], entries.map(entryRow), "entries-table"));
}

async function entryPage(seq) {
  const entries = await api(`/v1/chain/inputs?from=${encodeURIComponent(seq)}&limit=1`);
  const e = entries[0];
  if (!e || String(e.seq) !== String(seq)) throw new ApiError(404, { error: "not_found", detail: `no entry ${seq}` });
  return h("div", { "data-testid": "entry" },
    h("h1", {}, `Entry ${num(e.seq)}: ${e.name}`),
    h("div", { class: "panel" }, facts([
      ["Time", when(e.time)], ["Kind", e.kind], ["Signer", e.signer ? accountLink(e.signer) : "–"],
    ])),
    h("pre", {}, JSON.stringify(e.input, null, 2)));
}

/** Search: a number is a job or a block, 64 hex digits a provider or an account. */
async function searchPage(params) {
  const q = (params.get("q") || "").trim().toLowerCase();
  const hits = [];
  if (/^#?\d+$/.test(q)) {
    const n = q.replace("#", "");
    const [job, blocks] = await Promise.all([
      api(`/v1/jobs/${n}`).catch(() => null),
      api(`/v1/chain/blocks?from=${n}&limit=1`).catch(() => []),
    ]);
    if (job) hits.push(h("li", {}, h("a", { href: `#/jobs/${n}` }, `Job #${n}`), ` (${job.status})`));
    if (blocks.length && String(blocks[0].header.height) === n) hits.push(h("li", {}, h("a", { href: `#/blocks/${n}` }, `Block ${n}`)));
    hits.push(h("li", {}, h("a", { href: `#/entries/${n}` }, `Log entry ${n}`)));
  } else if (/^[0-9a-f]{64}$/.test(q)) {
    const provider = await api(`/v1/providers/${q}`).catch(() => null);
    if (provider) hits.push(h("li", {}, h("a", { href: `#/providers/${q}` }, `Provider ${short(q)}`)));
    hits.push(h("li", {}, h("a", { href: `#/accounts/${q}` }, `Account ${short(q)}`)));
  }
  return h("div", { "data-testid": "search" },
    h("h1", {}, `Search: ${q}`),
    hits.length ? h("ul", {}, hits) : h("p", {}, "Search by a job id or block height (a number) or an account or provider id (64 hex digits)."));
}

// ---- router --------------------------------------------------------------------------------

const routes = [
  [/^\/?$/, () => networkPage(), "network", true],
  [/^\/jobs$/, (m, q) => jobsPage(q), "jobs", true],
  [/^\/jobs\/(\d+)$/, (m, q) => jobPage(m[1], q), "jobs", true],
  [/^\/providers$/, () => providersPage(), "providers", true],
  [/^\/providers\/([0-9a-f]{64})$/, (m) => providerPage(m[1]), "providers", true],
  [/^\/accounts?\/([0-9a-f]{64})$/, (m) => accountPage(m[1]), "chain", true],
  [/^\/chain$/, (m, q) => chainPage(q), "chain", true],
  [/^\/governance$/, () => governancePage(), "governance", true],
  [/^\/validators$/, () => validatorsPage(), "validators", true],
  [/^\/blocks\/(\d+)$/, (m) => blockPage(m[1]), "chain", false],
  [/^\/entries\/(\d+)$/, (m) => entryPage(m[1]), "chain", false],
  [/^\/search$/, (m, q) => searchPage(q), "", false],
];

const current = { live: false, drawing: false, again: false };

async function redraw() {
  if (current.drawing) { current.again = true; return; }
  current.drawing = true;
  const main = document.getElementById("main");
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  let page;
  for (const [re, draw, nav, isLive] of routes) {
    const m = path.match(re);
    if (!m) continue;
    current.live = isLive;
    for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === nav);
    try {
      page = await draw(m, params);
    } catch (e) {
      page = errorBox(e);
    }
    break;
  }
  if (!page) {
    current.live = false;
    page = errorBox(`No page at ${raw}`);
  }
  // Keep open <details> open and the scroll position across a live redraw.
  const open = [...main.querySelectorAll("details[open]")].map((d) => d.closest("[data-testid]")?.dataset.testid);
  main.replaceChildren(page);
  for (const id of open) main.querySelector(`[data-testid="${CSS.escape(id || "")}"] details`)?.setAttribute("open", "");
  current.drawing = false;
  if (current.again) { current.again = false; redraw(); }
}

window.addEventListener("hashchange", () => { window.scrollTo(0, 0); redraw(); });
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = document.getElementById("search-input").value.trim();
    location.hash = `#/search?q=${encodeURIComponent(q)}`;
  });
  seed().then(() => { connect(); redraw(); });
});
