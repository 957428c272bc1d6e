// The guard's panel: the status pushed over a WebSocket, commands as the control socket's requests; no data after 2 s of silence.
// Off loopback reading needs a session: until a login, and again after a logout or an idle end, only the login form.
"use strict";
const STALE_MS = 2000;
const POLICY_CLOSE = 1008;  // the live status's close code when the session it needed has ended
const MAX_EVENTS = 50;
const RANK = { viewer: 1, operator: 2, technician: 3 };
let crossing = null;
let health = null;        // the health view (health.js)
let session = null;       // {user, role, csrf} while logged in
let lastMessage = -Infinity;  // performance.now() of the last message: immune to the wall clock being set
let lastStatusWall = null;    // epoch seconds of the last message from barrierd, for "no data since"
let lastStatus = null;
let lastEventId = 0;
let eventsBusy = false;
let idleTimer = null;     // fires when the session would end unless a command was sent meanwhile
let readingNeedsLogin = false;  // the panel is off loopback: the crossing is read only while logged in
let live = null;          // the WebSocket of the live status, while the crossing is read
let opening = null;       // the layout being asked for

const $ = id => document.getElementById(id);

function may(role) { return session !== null && RANK[session.role] >= RANK[role]; }

function button(label, className, onPress, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  if (title) b.title = title;
  b.addEventListener("click", onPress);
  return b;
}

// What this user may do to a device or a lane (the server checks again: a hidden button is not a permission).
function actions(kind, name, item) {
  if (!session || !item || document.body.classList.contains("stale")) return [];
  if (kind === "device") {
    return item.verbs.filter(v => may(v === "reset" ? "technician" : "operator"))
      .map(v => button(v, ["close", "raise", "red"].includes(v) ? "secure" : v === "reset" ? "" : "open",
                       () => send(v, { device: name }), `${v} ${name}`));
  }
  const out = [];
  if (may("operator")) {
    out.push(button("Secure lane", "secure", () => send("lane_secure", { lane: name })));
    out.push(button("Open lane", "open", () => send("lane_open", { lane: name })));
    out.push(button("Lockdown lane", "danger", () => confirmThen(`Lockdown ${name}`, reason => send("lockdown", { lane: name, reason }))));
  }
  if (may("technician")) {
    if (item.lockdown) out.push(button("Release lane lockdown", "", () => confirmThen(`Release the lockdown of ${name}`, reason => send("lockdown_release", { lane: name, reason }))));
    const inMaintenance = item.mode === "maintenance";
    out.push(button(inMaintenance ? "End maintenance" : "Maintenance", "", () => confirmThen(
      `${inMaintenance ? "End maintenance of" : "Maintenance for"} ${name}`,
      reason => send(inMaintenance ? "maintenance_exit" : "maintenance_enter", { lane: name, reason }))));
  }
  return out;
}

function say(text, ok) {
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "done" : "refused";
}

// One request shape for the page, scripts and tests: the control socket's {"command", "args"}.
async function send(command, args) {
  say(`${command}: sent…`, true);
  let reply;
  try {
    const answer = await fetch("/api/command", {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": session ? session.csrf : "" },
      body: JSON.stringify({ command, args }),
    });
    reply = await answer.json();
    if (answer.status === 401) { showLoggedOut(); say(`${command}: ${reply.error}`, false); return; }
    if (session) watchSession(session.idle_timeout_s);  // a command restarts the session's idle time
  } catch (error) {
    say(`${command}: barrierd did not answer (${error})`, false);
    return;
  }
  if (reply.error) say(`${command}: ${reply.error}`, false);
  else say(`${command}: ${reply.message}`, reply.exit === 0);
}

function confirmThen(title, act) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-reason").value = "";
  dialog.onclose = () => {
    const reason = $("confirm-reason").value.trim();
    if (dialog.returnValue === "ok" && reason) act(reason);
  };
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-reason").focus();
}

$("confirm-form").addEventListener("submit", event => {
  event.preventDefault();
  if (!$("confirm-reason").value.trim()) return;
  $("confirm").close("ok");
});
$("confirm-cancel").addEventListener("click", () => $("confirm").close("cancel"));

function showLoggedIn(who) {
  session = who;
  readingNeedsLogin = who.reading_needs_login;
  $("login").hidden = true;
  $("session").hidden = false;
  $("session-user").textContent = `${who.user} (${who.role})`;
  watchSession(who.idle_left_s ?? who.idle_timeout_s);
  redraw();
}

// barrierd ends a session after idle_timeout_s without a command; when that time is up the page asks
// whether it has ended (a command from another tab keeps it) and shows the login form if so.
function watchSession(leftS) {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(checkSession, leftS * 1000 + 250);
}

async function checkSession() {
  if (!session) return;
  try {
    const answer = await fetch("/api/session", { cache: "no-store", signal: AbortSignal.timeout(STALE_MS) });
    if (answer.status === 401) { sessionEnded(`session ended: no command for ${session.idle_timeout_s} s; log in to act`); return; }
    if (answer.ok) { watchSession((await answer.json()).idle_left_s); return; }
  } catch (error) { /* barrierd did not answer: ask again shortly */ }
  watchSession(1);
}

function sessionEnded(why) {
  if (!session) return;  // already shown (the live status and the idle timer may both tell)
  showLoggedOut();
  say(why, true);
}

function showLoggedOut() {
  clearTimeout(idleTimer);
  session = null;
  $("login").hidden = false;
  $("session").hidden = true;
  $("login-password").value = "";
  if (readingNeedsLogin) {
    stopReading();
    if (!$("login").contains(document.activeElement)) $("login-user").focus();
  } else redraw();
}

// The crossing drawn from the layout and followed live; off loopback only once logged in.
function startReading() {
  if (!crossing && !opening) opening = openCrossing().finally(() => { opening = null; });
  return opening;
}

async function openCrossing() {
  const asked = session;
  const answer = await fetch("/api/layout", { cache: "no-store" });
  if (answer.status === 401) {
    if (session !== asked) return openCrossing();  // logged in meanwhile: ask again
    readingNeedsLogin = true;
    showLoggedOut();
    say("log in to see the crossing", true);
    return;
  }
  const layout = await answer.json();
  if (!answer.ok) throw new Error(layout.error);
  health = new HealthView($("health"), $("health-list"), $("health-message"), layout.words);
  crossing = new Crossing($("crossing"), layout, actions, name => health.open(name));  // "no data" until a status
  lastMessage = performance.now();  // silence is counted from now: "not answering" only after STALE_MS
  connect();
}

// Logged out off loopback: nothing of the crossing stays on screen, and no "not answering" either.
function stopReading() {
  const ws = live;
  live = null;
  if (ws) ws.close();
  if ($("health").open) $("health").close();  // nothing of the crossing stays: its health neither
  crossing = health = null;
  lastStatus = lastStatusWall = null;
  lastMessage = -Infinity;
  lastEventId = 0;
  alarmsShown = "";
  document.body.classList.remove("stale");
  for (const id of ["crossing", "events", "alarms", "site-actions"]) $(id).replaceChildren();
  delete $("site-actions").dataset.offer;
  $("banner").textContent = "";
  $("lockdown").style.display = "none";
  $("title").textContent = "Barrier supervisor";
  $("live").textContent = "log in to read";
}

$("login").addEventListener("submit", async event => {
  event.preventDefault();
  const answer = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
    body: JSON.stringify({ user: $("login-user").value, password: $("login-password").value }),
  });
  const body = await answer.json();
  $("login-password").value = "";
  if (!answer.ok) { say(`login refused: ${body.error}`, false); return; }
  showLoggedIn(body);
  say(`logged in as ${body.user} (${body.role})`, true);
  startReading().catch(error => say(`the crossing could not be drawn: ${error}`, false));
});

async function endSession() {
  if (session) {
    await fetch("/api/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf }, credentials: "same-origin" });
  }
  showLoggedOut();
  say("session ended: log in to act", true);
}
$("lock").addEventListener("click", endSession);
$("logout").addEventListener("click", endSession);

function siteActions(status) {
  const out = [];
  if (session && !document.body.classList.contains("stale")) {
    if (may("operator")) out.push(button("LOCKDOWN SITE", "danger", () => confirmThen("Lockdown the whole site", reason => send("lockdown", { reason }))));
    if (may("technician") && status.lockdown) out.push(button("Release site lockdown", "", () => confirmThen("Release the site lockdown", reason => send("lockdown_release", { reason }))));
  }
  setButtons($("site-actions"), out);
}

let alarmsShown = "";
function renderAlarms(alarms) {
  const key = JSON.stringify([session && session.role, alarms]);
  if (key === alarmsShown) return;  // unchanged: the buttons stay, so does the focus
  alarmsShown = key;
  $("alarms").replaceChildren(...alarms.map(a => {
    const item = document.createElement("li");
    item.dataset.alarm = a.id;
    if (a.acked_by) item.className = "acked";
    const text = document.createElement("span");
    text.textContent = `#${a.id} ${a.severity} ${a.code} ${a.subject}: ${a.message}` + (a.acked_by ? ` (acknowledged by ${a.acked_by})` : "");
    item.append(text);
    if (!a.acked_by && may("operator")) item.append(button("Acknowledge", "", () => send("ack", { alarm: a.id })));
    return item;
  }));
}

function render(status) {
  $("title").textContent = `Barrier supervisor: site ${status.site}`;
  const lockdown = $("lockdown");
  lockdown.style.display = status.lockdown ? "block" : "none";
  lockdown.textContent = status.lockdown ? `SITE LOCKDOWN by ${status.lockdown.by}: ${status.lockdown.reason}` : "";
  if (crossing) crossing.render(status, lastStatusWall);
  siteActions(status);
  renderAlarms(status.alarms);
}

function redraw() {
  if (document.body.classList.contains("stale")) showStale(); else if (lastStatus) render(lastStatus);
}

function showStale() {
  document.body.classList.add("stale");
  const since = lastStatusWall ? new Date(lastStatusWall * 1000).toLocaleTimeString([], { hour12: false }) : "the start";
  $("banner").textContent = `barrierd is not answering: no data since ${since}; nothing shown is current`;
  $("live").textContent = "NO DATA";
  $("lockdown").style.display = "none";
  $("alarms").replaceChildren();
  alarmsShown = "";
  setButtons($("site-actions"), []);
  if (crossing) crossing.showStale(lastStatusWall);
}

function checkStale() {
  if (crossing && performance.now() - lastMessage > STALE_MS && !document.body.classList.contains("stale")) showStale();
}

async function refreshEvents() {
  if (eventsBusy) return;
  eventsBusy = true;
  const reading = crossing;
  try {
    const reply = await fetch(`/api/events?after=${lastEventId}`, { cache: "no-store", signal: AbortSignal.timeout(STALE_MS) });
    if (!reply.ok) return;
    const events = (await reply.json()).events;
    if (crossing !== reading) return;  // logged out meanwhile: not shown
    const list = $("events");
    for (const e of events.reverse()) {
      const item = document.createElement("li");
      item.textContent = `${new Date(e.ts * 1000).toLocaleTimeString([], { hour12: false })} ${e.kind} ${e.subject}: ${e.summary}`;
      list.prepend(item);
      lastEventId = Math.max(lastEventId, e.id);
    }
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  } catch (error) { /* the next status push tries again */ } finally { eventsBusy = false; }
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  live = ws;
  ws.onmessage = message => {
    if (ws !== live) return;
    const data = JSON.parse(message.data);
    lastMessage = performance.now();
    lastStatusWall = Date.now() / 1000;
    const wasStale = document.body.classList.contains("stale");
    document.body.classList.remove("stale");
    $("live").textContent = "live";
    if (data.type === "status") {
      lastStatus = data.status;
      render(data.status);
      document.body.dataset.statusSent = String(data.sent);
      refreshEvents();
    } else if (wasStale && lastStatus) {
      render(lastStatus);
    }
  };
  ws.onclose = event => {
    if (ws !== live) return;  // closed by stopReading
    live = null;
    if (event.code === POLICY_CLOSE) sessionEnded(event.reason);  // reading needed the session that ended
    else setTimeout(() => { if (crossing && !live) connect(); }, 500);
  };
}

async function start() {
  const who = await fetch("/api/session", { cache: "no-store" });
  if (who.ok) showLoggedIn(await who.json()); else showLoggedOut();
  await startReading();
}

$("health-open").addEventListener("click", () => { if (health) health.open(null); });
$("health-close").addEventListener("click", () => $("health").close());

function startOrRetry() {
  start().catch(error => { say(`the panel could not start: ${error}; trying again`, false); setTimeout(startOrRetry, 2000); });
}
setInterval(checkStale, 250);
startOrRetry();
