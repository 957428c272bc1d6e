// The operator panel: fetch the status twice a second; never show a state older than STALE_MS.
"use strict";
const POLL_MS = 500;
const STALE_MS = 2000;
const MAX_EVENTS = 50;
let lastOk = -Infinity;  // performance.now() of the last status drawn: immune to the wall clock being set
let lastOkWall = null;    // the same moment for people, in the banner
let lastEventId = 0;
let inFlight = false;     // one request at a time: a late reply never draws over a newer one

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fill(tableId, items, addRow) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  for (const item of items) addRow(body.insertRow(), item);
}

function render(status) {
  document.getElementById("title").textContent = `Barrier supervisor: site ${status.site}`;
  const lockdown = document.getElementById("lockdown");
  lockdown.style.display = status.lockdown ? "block" : "none";
  lockdown.textContent = status.lockdown ? `LOCKDOWN by ${status.lockdown.by}: ${status.lockdown.reason}` : "";
  const laneOf = {};
  for (const lane of status.lanes) for (const name of lane.devices) laneOf[name] = `${lane.name} (${lane.mode})`;
  fill("devices", status.devices, (row, d) => {
    row.dataset.device = d.name;
    cell(row, laneOf[d.name] || "-");
    cell(row, d.name);
    cell(row, d.kind);
    cell(row, d.display, `state state-${d.display}`);
    cell(row, d.plc);
    cell(row, d.reason);
  });
  fill("plcs", status.plcs, (row, p) => {
    row.dataset.plc = p.name;
    cell(row, p.name);
    cell(row, p.comms, p.comms === "ok" ? "" : "comms-bad");
    cell(row, p.comms === "ok" ? "" : p.reason);
  });
  fill("alarms", status.alarms, (row, a) => {
    cell(row, a.id); cell(row, a.severity); cell(row, a.code); cell(row, a.subject); cell(row, a.message);
  });
}

function showStale() {
  document.body.classList.add("stale");
  const since = lastOkWall ? lastOkWall.toLocaleTimeString() : "the start";
  document.getElementById("banner").textContent =
    `barrierd is not answering (last answer at ${since}); no state is shown`;
  for (const td of document.querySelectorAll("#devices td.state")) {
    td.textContent = "no data";
    td.className = "state state-nodata";
  }
  for (const row of document.querySelectorAll("#devices tbody tr")) row.cells[0].textContent = "-";
  for (const row of document.querySelectorAll("#plcs tbody tr")) {
    row.cells[1].textContent = "no data";
    row.cells[1].className = "comms-bad";
  }
  document.getElementById("lockdown").style.display = "none";
  document.querySelector("#alarms tbody").replaceChildren();
}

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const reply = await fetch("/api/status", { cache: "no-store", signal: AbortSignal.timeout(STALE_MS) });
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    render(await reply.json());
    lastOk = performance.now();
    lastOkWall = new Date();
    document.body.classList.remove("stale");
    await refreshEvents();
  } catch (error) {
    // nothing to do here: checkStale decides what is shown
  } finally {
    inFlight = false;
  }
}

function checkStale() {
  if (performance.now() - lastOk > STALE_MS) showStale();
}

async function refreshEvents() {
  const reply = await fetch(`/api/events?after=${lastEventId}`,
                            { cache: "no-store", signal: AbortSignal.timeout(STALE_MS) });
  if (!reply.ok) return;
  const body = document.querySelector("#events tbody");
  for (const e of (await reply.json()).events) {
    const row = body.insertRow(0);
    cell(row, e.id); cell(row, new Date(e.ts * 1000).toLocaleTimeString()); cell(row, e.kind);
    cell(row, e.subject); cell(row, e.summary);
    lastEventId = Math.max(lastEventId, e.id);
  }
  while (body.rows.length > MAX_EVENTS) body.deleteRow(-1);
}

refresh();
setInterval(refresh, POLL_MS);
setInterval(checkStale, POLL_MS / 2);
