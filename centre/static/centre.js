// The command centre's page: the fleet's picture from /api/live (Server-Sent Events), drawn with textContent only.
"use strict";

const NOT_CURRENT = new Set(["stale", "unheard", "unreadable", "offline"]);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function deviceBox(device) {
  const word = device.current ? device.display : device.state;
  const box = el("span", "device");
  box.dataset.device = device.name;
  box.dataset.state = device.state;
  box.title = NOT_CURRENT.has(device.state) ? `${device.name}: ${device.state} (last heard ${device.age_s ?? "never"} s ago)`
                                             : `${device.name}: ${word}`;
  box.append(el("span", "dname", device.name), el("span", "dstate", word));
  return box;
}

function laneRow(lane) {
  const row = el("div", "lane");
  row.dataset.lane = lane.name;
  row.dataset.mode = lane.mode;
  row.append(el("span", "name", lane.name), el("span", "mode", lane.mode));
  for (const device of lane.devices) row.append(deviceBox(device));
  return row;
}

function alarmList(alarms) {
  const list = el("ul", "alarms");
  if (alarms.state !== "current") {
    list.classList.add("not-current");
    list.append(el("li", null, `alarms ${alarms.state}`));
  } else if (!alarms.list || alarms.list.length === 0) {
    list.classList.add("none");
    list.append(el("li", null, "no active alarm"));
  } else {
    for (const alarm of alarms.list) list.append(el("li", null, `${alarm.code} ${alarm.subject ?? ""}: ${alarm.message ?? ""}`));
  }
  return list;
}

function siteCard(site) {
  const card = el("section", "site");
  card.dataset.prefix = site.prefix;
  card.dataset.state = site.state;
  const title = el("h2");
  title.append(el("span", "sname", site.site || ""), el("span", "prefix", site.prefix),
               el("span", `badge ${site.state}`, site.state.toUpperCase()));
  if (site.state === "offline" && site.reason) title.append(el("span", "reason", site.reason));
  if (site.lockdown.state === "on") title.append(el("span", "badge lockdown", "LOCKDOWN"));
  card.append(title);
  for (const lane of site.lanes) card.append(laneRow(lane));
  if (site.others.length) {
    const row = el("div", "lane others");
    row.append(el("span", "name", "other"), el("span", "mode", ""));
    for (const device of site.others) row.append(deviceBox(device));
    card.append(row);
  }
  card.append(alarmList(site.alarms));
  if (site.rejected) card.append(el("p", "problem", `${site.rejected} unreadable message(s), last: ${site.problem}`));
  return card;
}

function draw(picture) {
  const link = document.getElementById("link");
  link.textContent = picture.link.connected ? `connected to ${picture.link.broker} (${picture.link.filter})`
                                            : `NOT CONNECTED to ${picture.link.broker}: ${picture.link.error ?? "connecting"}`;
  link.className = picture.link.connected ? "link up" : "link down";
  document.getElementById("clock").textContent = new Date().toLocaleTimeString();
  const sites = document.getElementById("sites");
  const cards = picture.sites.map(siteCard);
  if (cards.length === 0) cards.push(el("p", "empty", "no site heard yet"));
  sites.replaceChildren(...cards);
}

function follow() {
  const source = new EventSource("/api/live");
  source.onmessage = (event) => draw(JSON.parse(event.data));
  source.onerror = () => {
    const link = document.getElementById("link");
    link.textContent = "page lost the centre: reconnecting…";
    link.className = "link down";
    for (const card of document.querySelectorAll(".site")) card.dataset.state = "stale";
    for (const box of document.querySelectorAll(".device")) box.dataset.state = "stale";
  };
}

follow();
