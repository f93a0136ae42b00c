// The console's little JavaScript: confirmations, the live status page, live progress
// bars. Everything the server sends is put in the page as text (textContent,
// setAttribute), never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STATUS_EVERY_MS = 3000;
const PROGRESS_EVERY_MS = 5000;
const SPARK_POINTS = 60;

function confirmations() {
  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    const question = button && button.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

async function getJson(url) {
  const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
  if (response.status === 401) { window.location.reload(); throw new Error("logged out"); }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function cell(row, text, numeric) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (numeric) td.className = "num";
  row.appendChild(td);
}

function replaceRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = columns;
    td.textContent = emptyText;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
  return tbody;
}

// --- the status page -------------------------------------------------------------------------

const history = {};  // queue -> recent per-second rates, oldest first

function drawBacklog(queues) {
  const top = Math.max(1, ...queues.map((q) => q.backlog));
  for (const q of queues) {
    const group = document.querySelector(`#backlog-chart g[data-queue="${q.queue}"]`);
    if (!group) continue;
    const width = (q.backlog / top) * 220;
    group.querySelector("rect").setAttribute("width", width.toFixed(1));
    const label = group.querySelector("text.value");
    label.setAttribute("x", (136 + width).toFixed(1));
    label.textContent = String(q.backlog);
  }
}

function drawRates(queues) {
  const top = Math.max(1, ...queues.flatMap((q) => history[q.queue] || []));
  for (const q of queues) {
    const points = history[q.queue] || [];
    const group = document.querySelector(`#rate-chart g[data-queue="${q.queue}"]`);
    if (!group) continue;
    const step = 220 / (SPARK_POINTS - 1);
    const start = 130 + (SPARK_POINTS - points.length) * step;
    const coordinates = points.map((rate, i) => `${(start + i * step).toFixed(1)},${(20 - (rate / top) * 16).toFixed(1)}`);
    if (coordinates.length === 1) coordinates.unshift(`130,${coordinates[0].split(",")[1]}`);
    group.querySelector("polyline").setAttribute("points", coordinates.join(" "));
    group.querySelector("text.value").textContent = String(q.per_second);
  }
}

function showStatus(status) {
  for (const tile of document.querySelectorAll("[data-count]")) {
    tile.textContent = String(status.part_counts[tile.dataset.count] || 0);
  }
  document.getElementById("mt-rate").textContent = String(status.mt_per_second);
  document.getElementById("backlog-total").textContent = String(status.queues.reduce((sum, q) => sum + q.backlog, 0));

  const alerts = document.getElementById("alerts");
  alerts.replaceChildren(...status.alerts.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));

  for (const q of status.queues) {
    (history[q.queue] = history[q.queue] || []).push(q.per_second);
    if (history[q.queue].length > SPARK_POINTS) history[q.queue].shift();
    const row = document.querySelector(`#queues tr[data-queue="${q.queue}"]`);
    if (!row) continue;
    for (const td of row.querySelectorAll("td[data-field]")) {
      const value = q[td.dataset.field];
      td.textContent = value === null || value === undefined ? "" : String(value);
    }
  }
  drawBacklog(status.queues);
  drawRates(status.queues);

  const binds = replaceRows(document.querySelector("#binds tbody"), status.carriers,
                            "no worker reports an SMPP carrier", 4);
  for (const c of status.carriers) {
    const tr = document.createElement("tr");
    tr.dataset.carrier = String(c.carrier_id);
    tr.className = !c.up ? "down" : c.up < c.total ? "partial" : "up";
    cell(tr, c.carrier_id); cell(tr, c.name); cell(tr, `${c.up}/${c.total}`, true); cell(tr, c.processes, true);
    binds.appendChild(tr);
  }

  const parts = replaceRows(document.querySelector("#parts tbody"), status.parts, "no heartbeats", 8);
  for (const p of status.parts) {
    const tr = document.createElement("tr");
    if (p.late) tr.className = "late";
    cell(tr, p.part); cell(tr, p.host); cell(tr, p.pid, true); cell(tr, p.up_seconds, true);
    cell(tr, p.last_beat_seconds, true); cell(tr, p.queues.join(", "));
    cell(tr, Object.entries(p.binds).map(([carrier, [up, total]]) => `${carrier}: ${up}/${total}`).join(" "));
    cell(tr, p.per_second, true);
    parts.appendChild(tr);
  }
}

function liveStatus() {
  const section = document.getElementById("status");
  if (!section) return;
  const refresh = async () => {
    try {
      showStatus(await getJson(section.dataset.refresh));
      section.dataset.updated = String(Date.now());
    } catch (error) {
      console.warn(error);
    }
  };
  refresh();
  setInterval(refresh, STATUS_EVERY_MS);
}

// --- campaign progress bars ------------------------------------------------------------------

function showProgress(svg, p) {
  const total = Math.max(1, p.total);
  let x = 0;
  for (const part of ["delivered", "failed", "submitted", "queued"]) {
    const width = (p[part] / total) * 300;
    const rect = svg.querySelector(`rect[data-part="${part}"]`);
    rect.setAttribute("x", x.toFixed(2));
    rect.setAttribute("width", width.toFixed(2));
    x += width;
  }
  svg.setAttribute("aria-label", `${p.done} of ${p.total} done`);
  svg.dataset.finished = p.finished ? "true" : "false";
  const text = document.querySelector(`[data-batch-text="${p.batch_id}"]`);
  if (text) {
    text.textContent = `${p.status}: ${p.delivered} delivered, ${p.failed} failed, ` +
      `${p.submitted} submitted, ${p.queued} queued of ${p.total}`;
  }
}

function liveProgress() {
  const bars = [...document.querySelectorAll("svg.progress[data-finished='false']")];
  if (!bars.length) return;
  const timer = setInterval(async () => {
    const pending = bars.filter((svg) => svg.dataset.finished !== "true");
    if (!pending.length) { clearInterval(timer); return; }
    for (const svg of pending) {
      try {
        showProgress(svg, await getJson(svg.dataset.api));
      } catch (error) {
        console.warn(error);
      }
    }
  }, PROGRESS_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  confirmations();
  liveStatus();
  liveProgress();
});
