// The health view: each travelling device's last travel times against its limit and drift warning level, EFO raises
// against the EFO limit, drawn with uPlot (vendor/, offline); its readiness and reasons in words. From /api/health.
"use strict";
const HEALTH_REFRESH_MS = 2000;
const READINESS_WORDS = { ready: "EFO ready", degraded: "EFO degraded", not_ready: "EFO NOT READY", unknown: "EFO unknown" };
const TRAVEL_COLOURS = { open: "#4cd964", closed: "#6cb4ff", efo: "#ff8c1a" };
const TRAVEL_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000];  // whole travels
const LIMIT_COLOUR = "#ff4040", EFO_LIMIT_COLOUR = "#ff9ad5", WARN_COLOUR = "#ffd400";

function readinessWord(readiness) {
  return READINESS_WORDS[readiness.state] || `EFO ${readiness.state}`;
}

// Which directions a device travels: open and closed; EFO raises for a kind with EFO readiness or once one was timed.
function directionsOf(d) {
  const efo = d.directions.efo;
  return ["open", "closed"].concat(d.readiness || (efo && efo.recent_ms.length) ? ["efo"] : []);
}

// uPlot's aligned data: x = travel ids (one axis for every direction), a series per direction (null where the
// travel went the other way), then constant lines: the limit, the EFO limit, the drift warning level per direction.
function chartData(d) {
  const ways = directionsOf(d);
  const byId = new Map();
  for (const way of ways) d.directions[way].recent_ids.forEach((id, i) => byId.set(id, [way, d.directions[way].recent_ms[i]]));
  const ids = [...byId.keys()].sort((a, b) => a - b);
  const series = [{ label: "travel #" }];
  const data = [ids];
  const line = value => ids.map(() => value);
  for (const way of ways) {
    series.push({ label: way === "efo" ? "EFO raise" : `to ${d.words[way] || way}`, stroke: TRAVEL_COLOURS[way], width: 2,
                  spanGaps: true, points: { show: true, size: 8, fill: TRAVEL_COLOURS[way] } });
    data.push(ids.map(id => (byId.get(id)[0] === way ? byId.get(id)[1] / 1000 : null)));
  }
  series.push({ label: "limit", stroke: LIMIT_COLOUR, width: 2, dash: [10, 5], points: { show: false } });
  data.push(line(d.directions.open.limit_ms / 1000));
  if (ways.includes("efo")) {
    series.push({ label: "EFO limit", stroke: EFO_LIMIT_COLOUR, width: 2, dash: [3, 4], points: { show: false } });
    data.push(line(d.directions.efo.limit_ms / 1000));
  }
  for (const way of ways) {
    const warn = d.directions[way].drift_warn_ms;
    if (warn === null || warn === undefined) continue;
    series.push({ label: `drift warning ${way === "efo" ? "EFO" : d.words[way] || way}`, stroke: WARN_COLOUR, width: 1,
                  dash: [4, 4], points: { show: false } });
    data.push(line(warn / 1000));
  }
  return { series, data };
}

class HealthView {
  constructor(dialog, list, message, words) {
    this.dialog = dialog;
    this.list = list;
    this.message = message;
    this.words = words;      // kind -> {open: "lowered", closed: "raised"}: directions as a guard says them
    this.charts = {};        // device -> its uPlot (read by the end-to-end test)
    this.cards = {};
    this.shown = "";
    this.timer = null;
    dialog.addEventListener("close", () => { clearInterval(this.timer); this.timer = null; });
  }

  async open(device) {
    if (!this.dialog.open) this.dialog.showModal();
    await this.refresh();
    if (!this.timer) this.timer = setInterval(() => this.refresh(), HEALTH_REFRESH_MS);
    const card = device && this.cards[device];
    if (card) { card.scrollIntoView({ block: "nearest" }); card.classList.add("picked"); }
  }

  async refresh() {
    let reply, answer;
    try {
      answer = await fetch("/api/health", { cache: "no-store", signal: AbortSignal.timeout(STALE_MS) });
      reply = await answer.json();
    } catch (error) {
      this.message.textContent = `barrierd did not answer (${error}): what is shown is not current`;
      return;
    }
    if (!answer.ok || reply.exit !== 0) {
      this.message.textContent = reply.error || reply.message;
      return;
    }
    this.message.textContent = `as of ${new Date().toLocaleTimeString([], { hour12: false })}`;
    const key = JSON.stringify(reply.data);
    if (key === this.shown) return;
    this.shown = key;
    for (const d of reply.data.devices) this.draw({ ...d, words: this.words[d.kind] || {} });
  }

  card(name) {
    if (this.cards[name]) return this.cards[name];
    const card = el("section", "health-device");
    card.dataset.device = name;
    const head = el("div", "health-line");
    head.append(el("span", "health-name", name), el("span", "badge"), el("span", "health-cycles"));
    card.append(head, el("div", "health-reasons"), el("div", "health-chart"));
    this.list.append(card);
    return (this.cards[name] = card);
  }

  draw(d) {
    const card = this.card(d.name);
    const badge = card.querySelector(".badge");
    badge.hidden = !d.readiness;
    if (d.readiness) {
      badge.textContent = readinessWord(d.readiness);
      badge.className = `badge readiness-${d.readiness.state}`;
      card.dataset.readiness = d.readiness.state;
    }
    card.querySelector(".health-cycles").textContent = `${d.cycles ?? "-"} cycles` + (d.service_due ? " — SERVICE DUE" : "");
    const reasons = Object.values(d.conditions).concat(d.readiness ? d.readiness.reasons : []);
    card.querySelector(".health-reasons").textContent = [...new Set(reasons)].join("; ");
    const place = card.querySelector(".health-chart");
    if (this.charts[d.name]) { this.charts[d.name].destroy(); delete this.charts[d.name]; }
    const { series, data } = chartData(d);
    if (!data[0].length) { place.textContent = "no travels yet"; return; }
    place.textContent = "";
    const top = Math.max(...data.slice(1).flat().filter(v => v !== null));
    const one = data[0].length === 1 ? [data[0][0] - 1, data[0][0] + 1] : null;
    this.charts[d.name] = new uPlot({
      width: 590, height: 170, series, legend: { show: true },
      scales: { x: { time: false, ...(one ? { range: one } : {}) }, y: { range: [0, top * 1.15] } },
      axes: [{ stroke: "#ddd", grid: { stroke: "#333" }, ticks: { stroke: "#555" }, incrs: TRAVEL_STEPS },
             { stroke: "#ddd", grid: { stroke: "#333" }, ticks: { stroke: "#555" }, values: (u, v) => v.map(s => `${s} s`) }],
    }, data, place);
  }
}
