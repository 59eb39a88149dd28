// The wallboard: reads /api/v1/queues after every poll and redraws, never by parsing HTML
// (queue and account names are shown as text, whatever they contain).
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const sortBy = params.get("sort") === "name" ? "name" : "urgency";
  const apiQuery = new URLSearchParams();
  for (const key of ["account", "queue"]) for (const v of params.getAll(key)) apiQuery.append(key, v);
  const apiUrl = "api/v1/queues" + (apiQuery.toString() ? "?" + apiQuery : "");

  const $ = (id) => document.getElementById(id);
  const tbody = document.querySelector("#board tbody");
  const rows = new Map();  // "account/queue" -> <tr>
  let doc = null;          // the last document received
  let receivedAt = 0;      // performance.now() when it came
  let failingSince = null; // Date of the first failed fetch in a row
  let timer = null;

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const elapsed = () => (performance.now() - receivedAt) / 1000;
  const hhmmss = (d) => d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const wait = (s) => {
    if (s === undefined || s === null) return "–";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
  };
  const count = (v) => (v === undefined || v === null ? "–" : String(Math.round(v)));
  const percent = (v) => (v === undefined || v === null ? "–" : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %`);
  const ago = (s) => (s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

  // Data of an account this old (seconds), now: its age when fetched plus the time since.
  const ageNow = (account) => (account.data_age_seconds === null ? Infinity : account.data_age_seconds + elapsed());
  const showable = (account) => doc && !account.stale && ageNow(account) <= doc.max_data_age_seconds;

  function levels(queue) {
    const byFigure = {};
    for (const a of queue.alerts) for (const f of a.figures) {
      if (byFigure[f] !== "critical") byFigure[f] = a.severity;
    }
    return byFigure;
  }

  function urgency(queue) {
    let critical = 0, warning = 0;
    for (const a of queue.alerts) a.severity === "critical" ? critical++ : warning++;
    const f = queue.figures;
    return [critical, warning, f.active_sessions || 0, f.longest_wait_seconds ?? f.estimated_wait_seconds ?? 0];
  }

  function compare(a, b) {
    if (sortBy === "urgency") {
      const ua = urgency(a.queue), ub = urgency(b.queue);
      for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return ub[i] - ua[i];
    }
    return a.account.name.localeCompare(b.account.name) || a.queue.name.localeCompare(b.queue.name) ||
      a.queue.id.localeCompare(b.queue.id);
  }

  function cell(tr, i, text, level, sub) {
    const td = tr.cells[i];
    td.className = (i === 0 ? "queue" : "") + (level ? " " + level : "");
    td.textContent = text;
    if (sub) td.appendChild(el("span", "sub", sub));
  }

  function drawRow(account, queue, stale) {
    const key = account.id + "/" + queue.id;
    let tr = rows.get(key);
    if (!tr) {
      tr = el("tr");
      for (let i = 0; i < 9; i++) tr.appendChild(el("td"));
      tr.dataset.account = account.id;
      tr.dataset.queue = queue.id;
      rows.set(key, tr);
    }
    const f = queue.figures, lv = levels(queue);
    const name = tr.cells[0];
    name.className = "queue";
    name.replaceChildren(el("span", "account", account.name), el("span", "name", queue.name));
    name.title = `${account.name} · ${queue.name}`;
    const longest = f.longest_wait_seconds;
    cell(tr, 1, count(f.active_sessions), lv.active_sessions);
    cell(tr, 2, wait(longest ?? f.estimated_wait_seconds), null, longest === undefined ? "estimated" : undefined);
    cell(tr, 3, wait(f.estimated_wait_seconds), lv.estimated_wait_seconds);
    const agents = `${count(f.available_recipients)} / ${count(f.active_recipients)}`;
    // Logged-in agents by state, where Kazoo's agent status is read: "2 ready · 1 on call · ...".
    // No-break spaces within "1 on call": a line that does not fit breaks between states only.
    const states = queue.agents ? Object.entries(queue.agents).filter(([, n]) => n)
      .map(([s, n]) => `${n}\u00a0${s.replace("_", "\u00a0")}`).join(" · ") : undefined;
    cell(tr, 4, agents, lv.available_recipients === "critical" ? "critical" : lv.active_recipients, states);
    cell(tr, 5, count(f.daily_sessions));
    cell(tr, 6, count(f.daily_missed_sessions));
    cell(tr, 7, count(f.daily_abandoned_sessions));
    cell(tr, 8, percent(f.daily_abandoned_ratio), lv.daily_abandoned_ratio);
    tr.classList.toggle("stale", stale);
    tr.title = stale ? `figures ${ago(ageNow(account))} old: Kazoo did not answer the last poll` : "";
    return tr;
  }

  function banner(text, cls) {
    return el("div", "banner" + (cls ? " " + cls : ""), text);
  }

  function draw() {
    const now = new Date();
    $("clock").textContent = hhmmss(now);
    const banners = [];
    if (failingSince) {
      banners.push(banner(`Exporter not answering since ${hhmmss(failingSince)}` +
        (doc ? ` — last figures ${ago(elapsed())} old` : ""), "stale"));
    }
    const shown = [];
    for (const account of doc ? doc.accounts : []) {
      const label = account.name;
      const since = account.last_success ? hhmmss(new Date(account.last_success * 1000)) : "start-up";
      if (!showable(account)) {
        // The same rule as /metrics: past --max-data-age the figures are gone, not frozen.
        banners.push(banner(`${label}: no current data since ${since} — figures hidden` +
          (account.up ? "" : ` (Kazoo: ${account.error || "no answer"})`)));
        continue;
      }
      const stale = !account.up;
      if (stale) {
        banners.push(banner(`${label}: Kazoo not answering (${account.error || "error"}) — figures from ${since}, ` +
          `${ago(ageNow(account))} old, hidden after ${ago(doc.max_data_age_seconds)}`, "stale"));
      }
      for (const queue of account.queues) shown.push({ account, queue, stale });
    }
    $("banners").replaceChildren(...banners);
    shown.sort(compare);
    const keep = new Set();
    const ordered = shown.map(({ account, queue, stale }) => {
      keep.add(account.id + "/" + queue.id);
      return drawRow(account, queue, stale);
    });
    for (const [key, tr] of rows) if (!keep.has(key)) rows.delete(key);
    tbody.replaceChildren(...ordered);
    fit(ordered.length);
    const empty = $("empty");
    empty.hidden = ordered.length > 0;
    if (!ordered.length) {
      empty.textContent = !doc ? "Waiting for the first poll…" :
        doc.accounts.length ? "No queue to show." : "No account polled yet.";
    }
    $("updated").textContent = doc ? `updated ${ago(elapsed())} ago` : "";
    document.body.dataset.state = banners.length ? "degraded" : doc ? "live" : "waiting";
  }

  // Rows share the height under the header and banners: 8 or fewer fill the screen, more shrink
  // down to a floor (then the board scrolls).
  function fit(n) {
    const main = document.querySelector("main"), head = document.querySelector("#board thead");
    const row = Math.floor((main.clientHeight - head.offsetHeight) / Math.max(8, n)) - 1;
    document.documentElement.style.setProperty("--row", `${Math.max(32, row)}px`);
  }

  function schedule() {
    const interval = doc && doc.interval_seconds ? doc.interval_seconds : 10;
    // Twice per poll: a new poll shows within half an interval, at little cost.
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.min(5000, Math.max(1000, interval * 500)));
  }

  async function refresh() {
    try {
      const response = await fetch(apiUrl, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      if (body.version !== 1) throw new Error(`API version ${body.version}`);
      doc = body;
      receivedAt = performance.now();
      failingSince = null;
    } catch (err) {
      if (!failingSince) failingSince = new Date();
    }
    draw();
    schedule();
  }

  const scope = [...params.getAll("account").map((a) => `account ${a}`), ...params.getAll("queue").map((q) => `queue ${q}`)];
  $("scope").textContent = (scope.length ? scope.join(", ") + " · " : "") + `sorted by ${sortBy}`;
  setInterval(draw, 1000);
  addEventListener("resize", draw);
  refresh();
})();
