// The crossing drawn from /api/layout: each lane a road, its devices as icons in travel order, updated from the status.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
const SECURED = new Set(["closed", "raised", "red"]);
const OPEN = new Set(["open", "lowered", "green"]);
const MOVING = new Set(["opening", "closing", "raising", "lowering"]);
const COLOURS = { secured: "#0b3d91", open: "#0a7a2f", moving: "#b36b00", fault: "#c00000" };
const EFO_KINDS = new Set(["road_blocker", "spike_strip"]);  // their tile shows the EFO readiness badge

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

// One icon per behaviour: a signal's two lamps, a blocker rising from the road, a boom or gate leaf swinging.
function icon(kind) {
  const root = svg("svg", { viewBox: "0 0 120 64", role: "img" });
  root.append(svg("rect", { class: "backdrop", x: 0, y: 0, width: 120, height: 64, fill: "none" }));
  if (kind === "traffic_signal") {
    root.append(svg("rect", { x: 40, y: 2, width: 40, height: 60, rx: 8, fill: "#000", stroke: "#fff", "stroke-width": 2 }));
    root.append(svg("circle", { class: "lamp-red", cx: 60, cy: 17, r: 11, stroke: "#fff", "stroke-width": 2 }));
    root.append(svg("circle", { class: "lamp-green", cx: 60, cy: 46, r: 11, stroke: "#fff", "stroke-width": 2 }));
  } else if (kind === "road_blocker" || kind === "spike_strip") {
    root.append(svg("line", { x1: 0, y1: 60, x2: 120, y2: 60, stroke: "#ddd", "stroke-width": 3 }));
    root.append(svg("rect", { class: "body", x: 10, y: 10, width: 100, height: 50, stroke: "#fff", "stroke-width": 2 }));
  } else {  // gate, boom: a leaf on a post, swung up by how open it is
    root.append(svg("rect", { x: 4, y: 20, width: 12, height: 42, fill: "#ddd" }));
    root.append(svg("rect", { class: "body", x: 12, y: 22, width: 104, height: 12, stroke: "#fff", "stroke-width": 2 }));
  }
  return root;
}

// How open a device is, 0..1, from its encoder (POSITION 1000 = closed) or else from its state.
function openness(d) {
  if (typeof d.position === "number") return 1 - d.position / 1000;
  if (OPEN.has(d.display)) return 1;
  if (MOVING.has(d.display)) return 0.5;
  return 0;
}

function drawIcon(root, d, fresh) {
  const colour = !fresh ? "url(#hatch)" : d.state === "fault" ? COLOURS.fault
    : MOVING.has(d.display) ? COLOURS.moving : SECURED.has(d.display) ? COLOURS.secured
    : OPEN.has(d.display) ? COLOURS.open : "url(#hatch)";
  root.querySelector(".backdrop").setAttribute("fill", fresh && d.state !== "unknown" ? "none" : "url(#hatch)");
  const red = root.querySelector(".lamp-red");
  if (red) {
    const known = fresh && d.state !== "unknown";
    red.setAttribute("fill", !known ? "url(#hatch)" : d.display === "red" ? "#ff2020" : "#300");
    root.querySelector(".lamp-green").setAttribute("fill", !known ? "url(#hatch)" : d.display === "green" ? "#20ff40" : "#030");
    return;
  }
  const body = root.querySelector(".body");
  const open = fresh ? openness(d) : 0;
  body.setAttribute("fill", colour);
  if (d.kind === "road_blocker" || d.kind === "spike_strip") {  // raised = full height, lowered = flush with the road
    const height = 4 + 46 * (1 - open);
    body.setAttribute("y", 60 - height);
    body.setAttribute("height", height);
  } else {
    body.setAttribute("transform", `rotate(${-80 * open} 12 28)`);
  }
}

// Replace a row of buttons only when what they offer changed: a push never steals focus or a finger's tap.
function setButtons(container, buttons) {
  const key = buttons.map(b => b.textContent).join("|");
  if (container.dataset.offer === key) return;
  container.dataset.offer = key;
  container.replaceChildren(...buttons);
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

class Crossing {
  constructor(root, layout, actions, pick) {
    this.root = root;
    this.actions = actions;   // (kind, name, target) -> buttons, from panel.js: what this user may do
    this.pick = pick;         // name -> opens its health view (a tap on a travelling device's tile)
    this.lastGood = {};       // device -> epoch seconds of its last good data, for "no data since"
    this.devices = {};
    this.lanes = {};
    root.replaceChildren();
    for (const lane of layout.lanes) this.addLane(lane.name, lane.devices, []);
    if (layout.others.length) this.addLane(null, layout.others, layout.airlocks);
  }

  addLane(name, devices, airlocks) {
    const section = el("section", "lane");
    section.dataset.lane = name || "other";
    const head = el("div", "lane-head");  // the lane's title (name, mode; its reason below) and its buttons
    const title = el("div", "lane-title");
    const line = el("div", "lane-line");
    const mode = el("span", "lane-mode", name ? "…" : "");
    const reason = el("div", "lane-reason");
    line.append(el("span", "lane-name", name || "Inspection bay and other devices"), mode);
    title.append(line, reason);
    head.append(title);
    const road = el("div", "road");
    const vehicle = el("span", "vehicle", "VEHICLE ON LOOP");
    vehicle.hidden = true;
    road.append(vehicle);
    const linked = new Set(airlocks.flat());
    devices.forEach((d, i) => {
      road.append(this.addDevice(d));
      const next = devices[i + 1];
      if (next && airlocks.some(pair => pair.includes(d.name) && pair.includes(next.name)))
        road.append(el("span", "airlock-link", "⇔ airlock: never both open"));
      else if (linked.has(d.name) && !next) { /* the pair's link is drawn between them */ }
    });
    const buttons = el("div", "actions");
    head.append(buttons);  // beside the title, not under the road: every lane fits the booth's screen
    section.append(head, road);
    this.root.append(section);
    if (name) this.lanes[name] = { section, mode, reason, vehicle, buttons, devices: devices.map(d => d.name) };
    else this.others = { vehicle, devices: devices.map(d => d.name) };
  }

  addDevice(d) {
    const tile = el("div", "device nodata");
    tile.dataset.device = d.name;
    const picture = icon(d.kind);
    const name = el("span", "name", d.name);
    const state = el("span", "state", "no data");
    const note = el("span", "note");
    const verbs = el("div", "verbs");
    const badge = el("span", "badge");
    badge.hidden = true;
    tile.append(picture, name, state, badge, note, verbs);
    if (d.kind !== "traffic_signal") {  // a travelling device: a tap (not on its buttons) shows its health
      tile.tabIndex = 0;
      tile.title = `${d.name}: travel times and condition`;
      tile.addEventListener("click", event => { if (!event.target.closest("button")) this.pick(d.name); });
      tile.addEventListener("keydown", event => { if (event.key === "Enter" && event.target === tile) this.pick(d.name); });
    }
    this.devices[d.name] = { tile, picture, state, badge, note, verbs, kind: d.kind };
    return tile;
  }

  render(status, now) {
    const byName = Object.fromEntries(status.devices.map(d => [d.name, d]));
    const alarmsOf = {};
    for (const a of status.alarms) (alarmsOf[a.subject] = alarmsOf[a.subject] || []).push(a);
    for (const [name, view] of Object.entries(this.devices)) {
      const d = byName[name];
      const fresh = d && d.quality === "good" && d.state !== "unknown";
      if (fresh) this.lastGood[name] = now;
      view.tile.className = "device" + (fresh ? "" : " nodata") + (d && d.state === "fault" ? " fault" : "")
        + (d && MOVING.has(d.display) ? " moving" : "");
      view.tile.dataset.state = fresh ? d.display : "no data";
      view.state.textContent = fresh ? d.display : this.noDataText(name);
      const alarms = (alarmsOf[name] || []).concat(d ? alarmsOf[d.plc] || [] : []);
      view.note.textContent = alarms.length ? alarms.map(a => `${a.code}: ${a.message}`).join("; ")
        : (d && !fresh && d.reason) || "";
      if (d) drawIcon(view.picture, d, fresh);
      this.showReadiness(view, fresh && EFO_KINDS.has(view.kind) ? d.readiness : null);
      setButtons(view.verbs, this.actions("device", name, d));
    }
    for (const lane of status.lanes) {
      const view = this.lanes[lane.name];
      if (!view) continue;
      view.section.className = `lane mode-${lane.mode}`;
      view.section.dataset.mode = lane.mode;
      view.mode.textContent = lane.mode;
      view.reason.textContent = [lane.reason, lane.by ? `by ${lane.by}` : ""].filter(Boolean).join(" — ");
      view.vehicle.hidden = !lane.devices.some(n => byName[n] && byName[n].flags.includes("VEHICLE_PRESENT"));
      setButtons(view.buttons, this.actions("lane", lane.name, lane));
    }
  }

  // A blocker's EFO readiness as barrierd last assessed it; nothing while its data are not good.
  showReadiness(view, readiness) {
    view.badge.hidden = !readiness;
    view.tile.dataset.readiness = readiness ? readiness.state : "";
    if (!readiness) return;
    view.badge.textContent = readinessWord(readiness);
    view.badge.className = `badge readiness-${readiness.state}`;
    view.badge.title = readiness.reasons.join("; ");
  }

  noDataText(name) {
    return this.lastGood[name] ? `no data since ${clock(this.lastGood[name])}` : "no data";
  }

  // barrierd silent: every device hatched grey, every lane unknown, nothing offered to press.
  showStale(since) {
    for (const [name, view] of Object.entries(this.devices)) {
      view.tile.className = "device nodata";
      view.tile.dataset.state = "no data";
      view.state.textContent = since ? `no data since ${clock(since)}` : "no data";
      view.note.textContent = "";
      setButtons(view.verbs, []);
      this.showReadiness(view, null);
      const placeholder = { name, kind: view.kind, state: "unknown", display: "unknown", position: null };
      drawIcon(view.picture, placeholder, false);
    }
    for (const view of Object.values(this.lanes)) {
      view.section.className = "lane";
      view.section.dataset.mode = "no data";
      view.mode.textContent = "no data";
      view.reason.textContent = "";
      view.vehicle.hidden = true;
      setButtons(view.buttons, []);
    }
  }
}
