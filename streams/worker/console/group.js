// The group panels: every worker from /group, and the group's lag over the last hour from
// /lag/history. Both are read from the status topic, so any worker draws the same page.
// It uses console.js's helpers (byId, fill, number, moment, status, svg, NONE).
"use strict";

const HISTORY_SIZE = { width: 720, height: 180, left: 60, right: 12, top: 12, bottom: 24 };

function heldPartitions(worker) {
  if (worker.partitions === null) return "not reported (older version)";
  return worker.partitions.map((p) => `${p.topic}[${p.partition}]`).join(", ") || NONE;
}

function openBatches(worker) {
  const rows = worker.open_batches.reduce((sum, b) => sum + b.rows, 0);
  return `${worker.open_batches.length} (${rows} rows)`;
}

// "idle 3, retrying 1": every writer counted by its state, states in name order.
function writerStates(worker) {
  if (worker.writers === null) return "not reported (older version)";
  const counts = new Map();
  for (const writer of worker.writers) counts.set(writer.state, (counts.get(writer.state) || 0) + 1);
  const named = [...counts.keys()].sort();
  return named.map((state) => `${state} ${counts.get(state)}`).join(", ") || NONE;
}

function halts(worker) {
  return worker.halted_partitions.map((h) => String(h.partition)).join(", ") || NONE;
}

function deadLetters(worker) {
  const letters = worker.dead_letters;
  if (letters === null) return "not reported (older version)";
  return `${letters.total} (${letters.redriven} re-driven)`;
}

function renderWorkers(group) {
  byId("worker-expiry").textContent = number(group.expiry_seconds);
  const rows = group.workers.map((w) => [
    w.worker,
    status(w.state.toUpperCase()),
    { text: heldPartitions(w), cls: "wrap" },
    openBatches(w),
    writerStates(w),
    halts(w),
    deadLetters(w),
    moment(w.last_seen),
    w.web || NONE,
  ]);
  fill(byId("workers").querySelector("table"), rows, "no worker has reported yet");
}

// Total lag against time, the last `span_seconds` up to the reading moment.
function renderHistory(history) {
  const figure = byId("chart-lag-history");
  figure.replaceChildren();
  byId("history-step").textContent = number(history.step_seconds);
  const points = history.points;
  const latest = points[points.length - 1];
  byId("history-latest").textContent = latest ? `${latest.total_lag} at ${moment(latest.at)}` : NONE;
  if (points.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "no sample yet";
    figure.append(empty);
    return;
  }
  const { width, height, left, right, top, bottom } = HISTORY_SIZE;
  const high = Math.max(1, ...points.map((p) => p.total_lag));
  const from = history.at - history.span_seconds;
  const x = (at) => left + ((at - from) / history.span_seconds) * (width - left - right);
  const y = (lag) => top + (1 - lag / high) * (height - top - bottom);
  const chart = svg("svg", { width, height, role: "img" });
  chart.append(svg("line", { x1: left, x2: width - right, y1: y(0), y2: y(0), class: "axis" }));
  chart.append(svg("line", { x1: left, x2: left, y1: top, y2: y(0), class: "axis" }));
  chart.append(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, String(high)));
  chart.append(svg("text", { x: left - 6, y: y(0), "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: left, y: height - 6 }, `${Math.round(history.span_seconds / 60)} min ago`));
  chart.append(svg("text", { x: width - right, y: height - 6, "text-anchor": "end" }, "now"));
  const line = points.map((p) => `${x(p.at).toFixed(1)},${y(p.total_lag).toFixed(1)}`).join(" ");
  chart.append(svg("polyline", { points: line, class: "lag" }));
  for (const p of points) {
    const dot = svg("circle", { cx: x(p.at), cy: y(p.total_lag), r: 2.5, class: "point", "data-at": p.at, "data-lag": p.total_lag });
    dot.append(svg("title", {}, `${moment(p.at)}: lag ${p.total_lag}`));
    chart.append(dot);
  }
  figure.append(chart);
}
