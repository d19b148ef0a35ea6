// The drill-down of clinsum's HTML report: reads the embedded JSON, lists the notes,
// renders one note on demand. Every text goes through textContent, never innerHTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const metrics = new Map(data.metrics.map((m) => [m.name, m]));
  const $ = (id) => document.getElementById(id);
  const KIND_ORDER = ["captured", "missed", "unsupported", "flipped"];
  let selected = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "–";
    return Math.abs(value) < 10 ? value.toFixed(3) : String(Number(value.toPrecision(4)));
  }

  // -- the note list ------------------------------------------------------------------------------

  function option(select, value, label) {
    select.append(el("option", { value: value, text: label }));
  }

  function setupControls() {
    for (const m of data.metrics) option($("sort-metric"), m.name, m.name + " " + m.arrow);
    $("sort-metric").value = data.sort;
    option($("sort-system"), "*", "any system (its worst)");
    for (const s of data.systems) option($("sort-system"), s, s);
    for (const id of ["search", "filter", "sort-metric", "sort-system", "sort-order"]) {
      $(id).addEventListener(id === "search" ? "input" : "change", renderList);
    }
  }

  function value(note, system, metric) {
    const entry = note.sys[system];
    const v = entry ? entry.m[metric] : undefined;
    return v === undefined ? null : v;
  }

  // Sort key: smaller sorts first; worst first means ascending for higher-is-better metrics.
  function sortKey(note, metric, system, order) {
    const direction = (metrics.get(metric) || {}).direction || "neutral";
    const flip = direction === "lower" ? -1 : 1;
    const sign = order === "worst" ? flip : -flip;
    const systems = system === "*" ? data.systems : [system];
    const values = systems.map((s) => value(note, s, metric)).filter((v) => v !== null);
    if (!values.length) return null;
    return Math.min(...values.map((v) => sign * v));
  }

  function matches(note, query, filter) {
    const entries = Object.values(note.sys);
    if (filter === "failed" && !entries.some((e) => e.err)) return false;
    if (filter === "flips" && !entries.some((e) => e.m.assertion_flips > 0)) return false;
    if (filter === "unsupported" && !entries.some((e) => e.m.unsupported_concepts > 0)) return false;
    if (filter === "judge" && !entries.some((e) => e.je && e.je.length)) return false;
    if (filter === "rated" && !entries.some((e) => e.r && e.r.length)) return false;
    if (!query) return true;
    if (note.id.toLowerCase().includes(query)) return true;
    if (note.lower === undefined) note.lower = note.text.toLowerCase();
    return note.lower.includes(query);
  }

  // A note's row is built once and reused: a new sort or filter only moves rows and, for a new
  // metric, rewrites their numbers.
  function rowOf(note, metric) {
    if (!note.row) {
      note.row = el("tr", { tabindex: "0", "data-note": note.id }, el("td", { class: "id", text: note.id }));
      note.cells = data.systems.map((s) => {
        const entry = note.sys[s];
        const cell = el("td", { class: "num" + (entry && entry.err ? " err" : "") });
        note.row.append(cell);
        return cell;
      });
      note.row.addEventListener("click", () => show(note));
      note.row.addEventListener("keydown", (e) => { if (e.key === "Enter") show(note); });
    }
    if (note.rowMetric !== metric) {
      data.systems.forEach((s, i) => {
        const entry = note.sys[s];
        note.cells[i].textContent = entry ? (entry.err ? "failed" : fmt(value(note, s, metric))) : "";
      });
      note.rowMetric = metric;
    }
    note.row.classList.toggle("selected", note === selected);
    return note.row;
  }

  function renderList() {
    const metric = $("sort-metric").value;
    const system = $("sort-system").value;
    const order = $("sort-order").value;
    const query = $("search").value.trim().toLowerCase();
    const filter = $("filter").value;
    const shown = data.notes.filter((n) => matches(n, query, filter))
      .map((n) => ({ note: n, key: sortKey(n, metric, system, order) }));
    shown.sort((a, b) => (a.key === null) - (b.key === null) || (a.key - b.key) || a.note.id.localeCompare(b.note.id));

    const head = el("tr", {}, el("th", { text: "note" }));
    for (const s of data.systems) head.append(el("th", { text: s, title: metric + " of " + s }));
    $("list-head").replaceChildren(head);
    const rows = document.createDocumentFragment();
    for (const { note } of shown) rows.append(rowOf(note, metric));
    $("list").replaceChildren(rows);
    $("count").textContent = shown.length + " of " + data.notes.length + " notes";
  }

  // -- one note -------------------------------------------------------------------------------------

  // Text with highlights: the spans are cut at every boundary and each piece carries every class over it.
  function highlighted(text, highlights) {
    const box = el("div", { class: "text" });
    const cuts = new Set([0, text.length]);
    for (const [s, e] of highlights) { cuts.add(Math.max(0, Math.min(s, text.length))); cuts.add(Math.max(0, Math.min(e, text.length))); }
    const points = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i + 1 < points.length; i++) {
      const [a, b] = [points[i], points[i + 1]];
      const over = highlights.filter(([s, e]) => s <= a && e >= b);
      const piece = text.slice(a, b);
      if (!over.length) { box.append(document.createTextNode(piece)); continue; }
      const kinds = new Set(over.map((h) => h[2]));
      const concept = KIND_ORDER.filter((k) => kinds.has(k)).pop();
      const classes = ["hl"];
      if (concept) classes.push(concept);
      if (kinds.has("quote")) classes.push("quote");
      box.append(el("mark", { class: classes.join(" "), title: [...new Set(over.map((h) => h[3]))].join("\n"), text: piece }));
    }
    return box;
  }

  function table(head, rows) {
    const t = el("table", { class: "small" });
    t.append(el("tr", {}, ...head.map((h) => el("th", { text: h }))));
    for (const r of rows) t.append(el("tr", {}, ...r.map((c) => el("td", { text: c == null ? "" : String(c) }))));
    return t;
  }

  function summaryPanel(note, system) {
    const entry = note.sys[system];
    const panel = el("div", { class: "panel summary", "data-system": system }, el("h4", { text: system }));
    if (entry.err) {
      panel.append(el("p", { class: "err", text: "failed: " + entry.err }));
      return panel;
    }
    panel.append(highlighted(entry.text, entry.hm));
    if (entry.unplaced) panel.append(el("p", { class: "hint", text: entry.unplaced + " concept(s) could not be placed in the text" }));
    const values = data.metrics.filter((m) => entry.m[m.name] !== undefined)
      .map((m) => [m.name + " " + m.arrow, fmt(entry.m[m.name])]);
    const scores = el("details", {}, el("summary", { text: "scores (" + values.length + ")" }), table(["metric", "value"], values));
    panel.append(scores);
    if (entry.jr) {
      panel.append(el("details", {}, el("summary", { text: "judge ratings" }),
        table(["attribute", "score", "rationale"], entry.jr.map(([m, v, r]) => [m, fmt(v), r]))));
    }
    if (entry.je) {
      const list = el("ol", { class: "judge-errors" });
      for (const e of entry.je) {
        const item = el("li", { class: e.verified ? "verified" : "unverified" },
          el("strong", { text: e.severity + " " + e.type + (e.verified ? "" : " (quotes not verified: not counted)") }),
          el("span", { class: "hint", text: " — " + e.judge }));
        if (e.summary_quote) item.append(el("div", {}, "summary: ", el("q", { class: "hl quote", text: e.summary_quote })));
        if (e.source_quote) item.append(el("div", {}, "source: ", el("q", { class: "hl quote", text: e.source_quote })));
        if (e.explanation) item.append(el("div", { class: "hint", text: e.explanation }));
        list.append(item);
      }
      panel.append(el("h5", { text: "judge errors (" + entry.je.length + ")" }), list);
    }
    if (entry.r) {
      panel.append(el("h5", { text: "physician ratings" }), table(["rater", "dimension", "value", "comment"], entry.r));
    }
    return panel;
  }

  function show(note) {
    selected = note;
    for (const row of $("list").children) row.classList.toggle("selected", row.dataset.note === note.id);
    const systems = data.systems.filter((s) => note.sys[s]);
    const detail = el("div", {}, el("h3", { text: note.id }));
    const pick = el("select", { id: "source-system", "aria-label": "highlight the source as seen by" });
    for (const s of systems) option(pick, s, s);
    const source = el("div", { class: "panel source" }, el("h4", {}, "source — concepts as seen by ", pick));
    const sourceText = el("div");
    const paint = () => {
      const entry = note.sys[pick.value];
      const text = highlighted(note.text, entry ? entry.hs : []);
      sourceText.replaceChildren(text);
      // bring the first status flip (else the first missed concept) into view inside the text box
      const first = text.querySelector("mark.flipped") || text.querySelector("mark.missed");
      if (first) text.scrollTop = Math.max(0, first.offsetTop - text.offsetTop - 60);
    };
    pick.addEventListener("change", paint);
    source.append(sourceText);
    if (note.ref) source.append(el("details", {}, el("summary", { text: "reference summary" }), el("div", { class: "text", text: note.ref })));
    const columns = el("div", { class: "columns" }, source, ...systems.map((s) => summaryPanel(note, s)));
    detail.append(columns);
    $("detail").replaceChildren(detail);
    paint();
  }

  setupControls();
  renderList();
  window.clinsumReadyMs = performance.now();  // read by benchmarks/report_size.py
  document.body.dataset.ready = "1";
})();
