// The operator console: reads the worker's JSON views and draws them; it changes nothing.
// Every text reaches the page through textContent: reasons and file names are event data.
"use strict";

const REFRESH_SECONDS = Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 5);
const SOURCES = {
  group: "/group",
  history: "/lag/history",
  lag: "/lag",
  batches: "/batches",
  deadLetters: "/dead-letters",
  rejections: "/rejections",
  byReason: "/analytics?by=reason",
  byFacility: "/analytics?by=facility",
  byDay: "/analytics?by=day",
  accuracyByFacility: "/analytics?accuracy=1&by=facility",
  accuracyByDay: "/analytics?accuracy=1&by=day",
};
const TOP_BARS = 20; // reasons and facilities: the largest by size of units
const LATEST_DAYS = 31;
const SVG = "http://www.w3.org/2000/svg"; // an XML namespace name, never fetched
const NONE = "—";

const byId = (id) => document.getElementById(id);

function number(value) {
  return value === null || value === undefined ? NONE : String(value);
}

function seconds(value) {
  return value === null || value === undefined ? NONE : `${value.toFixed(1)} s`;
}

function moment(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return NONE;
  return new Date(unixSeconds * 1000).toISOString().slice(0, 19).replace("T", " ") + "Z";
}

function percent(fraction) {
  return fraction === null || fraction === undefined ? NONE : `${(fraction * 100).toFixed(1)} %`;
}

// Rows are arrays of cells; a cell is a string or {text, cls}.
function fill(table, rows, empty) {
  const body = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  const made = rows.map((cells) => {
    const row = document.createElement("tr");
    for (const value of cells) {
      const cell = document.createElement("td");
      const { text, cls } = typeof value === "object" ? value : { text: value };
      cell.textContent = text;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    return row;
  });
  if (made.length === 0) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.className = "empty";
    cell.colSpan = columns;
    cell.textContent = empty;
    row.append(cell);
    made.push(row);
  }
  body.replaceChildren(...made);
}

function status(name) {
  return { text: name, cls: `status ${name}` };
}

function renderHeader(lag) {
  byId("group").textContent = lag.group;
  const badge = byId("group-status");
  badge.textContent = lag.status;
  badge.className = `status ${lag.status}`;
}

function renderPartitions(lag) {
  const rows = (lag.partitions || []).map((p) => [
    p.topic,
    number(p.partition),
    number(p.committed),
    number(p.high_watermark),
    number(p.lag),
    seconds(p.oldest_unconsumed_age_seconds),
    status(p.status),
  ]);
  fill(byId("partitions").querySelector("table"), rows, lag.detail || "no partitions yet");
}

function renderPipeline(lag, batches) {
  const group = lag.batches || { open: [], failing_writers: [], last_publish: {} };
  const feeds = batches.pipeline.map((f) => [
    f.feed,
    number(f.open_batches),
    number(f.open_rows),
    number(f.sealed),
    number(f.published_files),
    number(f.published_rows),
    moment(group.last_publish[f.feed]),
  ]);
  fill(byId("feeds"), feeds, "no feeds");
  const open = group.open.map((b) => [
    b.worker,
    b.feed,
    b.topic,
    number(b.partition),
    number(b.rows),
    number(b.first_offset),
    seconds(b.age_seconds),
  ]);
  fill(byId("open-batches"), open, "no batch is waiting");
  const writers = group.failing_writers.map((w) => [
    w.worker,
    w.feed,
    w.topic,
    number(w.partition),
    status(w.state.toUpperCase()),
    { text: w.error, cls: "wrap" },
  ]);
  fill(byId("writers"), writers, "every writer is healthy");
  const halted = (group.halted_partitions || []).map((h) => [
    h.worker,
    number(h.partition),
    number(h.offset),
    number(h.attempts),
    moment(h.since),
    { text: h.reason, cls: "wrap" },
  ]);
  fill(byId("halted"), halted, "no partition is halted");
}

function renderDeadLetters(tally) {
  byId("dlq-total").textContent = number(tally.dead_letters);
  byId("dlq-redriven").textContent = number(tally.redriven);
  const classes = Object.entries(tally.by_class).map(([name, count]) => [name, number(count)]);
  fill(byId("dlq-classes"), classes, "no dead letters");
  const reasons = tally.by_reason.map((r) => [r.error_class, { text: r.reason, cls: "wrap" }, number(r.count)]);
  fill(byId("dlq-reasons"), reasons, "no dead letters");
}

function renderRejections(found) {
  const checked = found.checked_at === null ? "not yet" : moment(found.checked_at);
  byId("rejections-checked").textContent = found.error ? `${checked} (now failing: ${found.error})` : checked;
  const rows = (found.rejections || []).map((r) => [
    r.feed,
    r.file,
    r.in_failed ? "yes" : "no",
    r.batch_at ? r.batch_at.slice(0, 19).replace("T", " ") + "Z" : NONE,
    { text: r.errors.length ? r.errors.join("; ") : "(no error file)", cls: "wrap" },
  ]);
  const empty = found.rejections === null ? "not looked at yet" : "NetSuite rejected nothing";
  fill(byId("rejections").querySelector("table"), rows, empty);
}

function svg(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Horizontal bars from a zero line, so that losses go left and finds go right.
function barChart(figureId, bars, { format, domain }) {
  const figure = byId(figureId);
  figure.querySelector("svg, p.empty")?.remove();
  if (bars.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "no data yet";
    figure.append(empty);
    return;
  }
  const [labelWidth, barWidth, valueWidth, rowHeight] = [150, 260, 70, 22];
  const values = bars.map((b) => b.value);
  const low = domain ? domain[0] : Math.min(0, ...values);
  const high = domain ? domain[1] : Math.max(0, ...values);
  const span = high - low || 1;
  const zero = labelWidth + ((0 - low) / span) * barWidth;
  const chart = svg("svg", {
    width: labelWidth + barWidth + valueWidth,
    height: bars.length * rowHeight + 6,
    role: "img",
  });
  bars.forEach((bar, index) => {
    const y = index * rowHeight + 3;
    const width = (Math.abs(bar.value) / span) * barWidth;
    const group = svg("g", { class: "bar", "data-label": bar.label, "data-value": bar.value });
    group.append(svg("title", {}, `${bar.label}: ${format(bar.value)}`));
    group.append(svg("text", { x: labelWidth - 6, y: y + 14, "text-anchor": "end" }, bar.label));
    const x = bar.value < 0 ? zero - width : zero;
    const kind = bar.value < 0 ? "negative" : "positive";
    group.append(svg("rect", { x, y, width: Math.max(width, 1), height: rowHeight - 6, class: kind }));
    group.append(svg("text", { x: labelWidth + barWidth + 6, y: y + 14 }, format(bar.value)));
    chart.append(group);
  });
  chart.append(svg("line", { x1: zero, x2: zero, y1: 0, y2: bars.length * rowHeight + 6, class: "axis" }));
  figure.append(chart);
}

function largest(rows, key) {
  return [...rows]
    .sort((a, b) => Math.abs(b.units) - Math.abs(a.units) || (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0))
    .slice(0, TOP_BARS)
    .map((row) => ({ label: row[key], value: row.units }));
}

function latestDays(rows, valueOf) {
  return rows
    .filter((row) => valueOf(row) !== null)
    .slice(-LATEST_DAYS)
    .map((row) => ({ label: row.day, value: valueOf(row) }));
}

function renderCharts(data) {
  const units = { format: number };
  const accuracy = { format: percent, domain: [0, 1] };
  barChart("chart-reason", largest(data.byReason, "reason_id"), units);
  barChart("chart-facility", largest(data.byFacility, "facility_id"), units);
  barChart("chart-day", latestDays(data.byDay, (row) => row.units), units);
  const byFacility = data.accuracyByFacility
    .filter((row) => row.accuracy !== null)
    .map((row) => ({ label: row.facility_id, value: row.accuracy }));
  barChart("chart-accuracy-facility", byFacility, accuracy);
  barChart("chart-accuracy-day", latestDays(data.accuracyByDay, (row) => row.accuracy), accuracy);
}

async function load() {
  const pairs = await Promise.all(
    Object.entries(SOURCES).map(async ([name, url]) => {
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
      return [name, await response.json()];
    }),
  );
  return Object.fromEntries(pairs);
}

function render(data) {
  renderWorkers(data.group); // group.js
  renderHistory(data.history);
  renderHeader(data.lag);
  renderPartitions(data.lag);
  renderPipeline(data.lag, data.batches);
  renderDeadLetters(data.deadLetters);
  renderRejections(data.rejections);
  renderCharts(data);
}

async function refresh() {
  const problem = byId("problem");
  try {
    render(await load());
    problem.hidden = true;
    byId("refreshed").textContent = `refreshed ${moment(Date.now() / 1000)}, every ${REFRESH_SECONDS} s`;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (error) {
    // Keep the last figures on screen and say they are old.
    problem.textContent = `cannot read the worker: ${error.message}`;
    problem.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_SECONDS * 1000);
  }
}

refresh();
