// impasto studio: the batch panel (several photos x several paintings, one queue entry).
// Uses the helpers of app.js ($, api, el, toast, upload, readSettings, formProblem, fmtTime,
// estimateText, problemText)
// and only the documented HTTP API (/api/batches...).
"use strict";

const batchState = { contents: [], styles: [], batches: [] };

function batchToggle(kind, item) {
  const list = batchState[kind];
  const at = list.findIndex((x) => x.ref === item.ref);
  if (at >= 0) list.splice(at, 1); else list.push(item);
  $("batch-error").textContent = "";  // it spoke of the picks before this one
  renderBatchPicks();
}

function renderBatchPicks() {
  for (const kind of ["contents", "styles"]) {
    const ul = $(`batch-${kind}`);
    ul.replaceChildren();
    for (const item of batchState[kind]) {
      ul.append(el("li", {}, el("img", { src: item.thumb_url, alt: "" }), ` ${item.name} `,
        el("button", { type: "button", class: "link", "aria-label": `remove ${item.name}`,
          onclick: () => batchToggle(kind, item) }, "remove")));
    }
  }
  for (const chip of document.querySelectorAll(".bchip")) {
    const on = batchState[chip.dataset.kind].some((x) => x.ref === chip.dataset.ref);
    chip.classList.toggle("selected", on);
    chip.setAttribute("aria-pressed", on ? "true" : "false");
  }
  batchEstimateSoon();
}

let batchEstimateTimer = null;
function batchEstimateSoon() {
  clearTimeout(batchEstimateTimer);
  batchEstimateTimer = setTimeout(updateBatchEstimate, 300);
}

// "4 jobs, about 3 min on cpu": the server's check and measured speed, as for a single job
async function updateBatchEstimate() {
  const out = $("batch-count");
  const n = batchState.contents.length * batchState.styles.length;
  const jobs = `${n} job${n === 1 ? "" : "s"}`;
  if (!n) { out.textContent = ""; return; }
  const problem = formProblem();
  if (problem) { out.textContent = `${jobs}; ${problemText(problem)}`; return; }
  try {
    const est = await api("POST", "/api/batches/estimate", batchBody());
    out.textContent = `${jobs}, about ${estimateText(est)}.`;
  } catch (err) {
    out.textContent = `${jobs}; not startable: ${err.message}`;
  }
}

function batchBody() {
  return {
    contents: batchState.contents.map((x) => x.ref),
    styles: batchState.styles.map((x) => x.ref),
    settings: readSettings(),
  };
}

function renderBatchExamples(examples) {
  for (const ex of examples) {
    const kind = ex.kind === "content" ? "contents" : "styles";
    const item = { ref: ex.ref, name: ex.name, thumb_url: ex.thumb_url };
    $(`batch-${kind}-examples`).append(el("button", {
      type: "button", class: "bchip", title: ex.name, "data-ref": ex.ref, "data-kind": kind,
      "aria-pressed": "false", onclick: () => batchToggle(kind, item),
    }, el("img", { src: ex.thumb_url, alt: ex.name })));
  }
}

async function startBatch() {
  $("batch-error").textContent = "";
  if (!batchState.contents.length || !batchState.styles.length) {
    $("batch-error").textContent = "Pick at least one photo and one painting.";
    return;
  }
  // the batch runs with the form's settings: the form's checks hold for it as for Start (a
  // blank Size would otherwise run every job at the engine's default size)
  if (!$("job-form").reportValidity()) {
    const problem = formProblem();
    $("batch-error").textContent =
      `Fix the settings above first: ${problem ? problem.text : "see the form"}`;
    return;
  }
  $("batch-start").disabled = true;
  try {
    await api("POST", "/api/batches", batchBody());
    refreshBatches();
  } catch (err) {
    $("batch-error").textContent = err.message;
  } finally {
    $("batch-start").disabled = false;
  }
}

async function batchAction(method, url, what) {
  try { await api(method, url); } catch (err) { toast(`${what}: ${err.message}`); }
  refreshBatches();
}

// a job's result: downloaded under the job's file name, and named as the gallery names a job
// ("png of chelsea × starry night"; a column of bare "png" links tells a reader nothing)
function resultLink(j) {
  const title = [j.content, j.style].map((x) => (x && x.name) || "image").join(" × ");
  return el("a", { class: "link", href: `${j.result_url}?download=true`,
    "aria-label": `png of ${title}`, download: j.name || `impasto-${j.id.slice(0, 8)}.png` },
  "png");
}

function batchCard(b) {
  const what = `batch of ${b.contents.length} photo(s) × ${b.styles.length} painting(s)`;
  const active = b.status === "queued" || b.status === "running";
  const head = `${b.done}/${b.total} done` + (b.failed ? ` · ${b.failed} failed` : "")
    + (b.status === "running" && b.eta !== null ? ` · ${fmtTime(b.eta)} left` : "")
    + (b.status === "queued" && b.position ? ` · queue #${b.position}` : "");
  const rows = b.jobs.map((j) => el("tr", {},
    el("td", {}, j.name || "–"),
    el("td", {}, el("span", { class: `badge ${j.status}` }, j.status)),
    // a job left pending by a cancel has no time of its own to show
    el("td", {}, j.elapsed !== null && j.status !== "pending" ? fmtTime(j.elapsed) : ""),
    el("td", {}, j.result_url ? resultLink(j)
      : j.error ? el("span", { class: "error" }, j.error) : "")));
  const bar = el("div", { class: "bar" });
  bar.style.width = `${b.total ? (100 * (b.done + b.failed)) / b.total : 0}%`;
  return el("article", { class: "batch", "data-id": b.id },
    el("div", { class: "row" },
      el("strong", {}, `${b.contents.length} photo(s) × ${b.styles.length} painting(s)`),
      el("span", { class: `badge ${b.status}` }, b.status), el("small", {}, head)),
    el("div", { class: "progress" }, bar),
    b.error ? el("p", { class: "error" }, b.error) : null,
    el("table", { class: "batch-jobs" }, ...rows),
    el("div", { class: "buttons" },
      active ? el("button", { type: "button", class: "link", "aria-label": `cancel ${what}`,
        onclick: () => batchAction("POST", `/api/batches/${b.id}/cancel`, "cancel") }, "cancel")
        : null,
      ["cancelled", "failed", "interrupted"].includes(b.status) ? el("button", {
        type: "button", class: "link", "aria-label": `resume ${what}`,
        onclick: () => batchAction("POST", `/api/batches/${b.id}/resume`, "resume") }, "resume")
        : null,
      b.zip_url ? el("a", { class: "link", href: b.zip_url, "aria-label": `download zip of ${what}` },
        "download zip") : null,
      active ? null : el("button", { type: "button", class: "link", "aria-label": `delete ${what}`,
        onclick: () => batchAction("DELETE", `/api/batches/${b.id}`, "delete") }, "delete")));
}

let batchTimer = null;
function refreshBatches() {
  clearTimeout(batchTimer);
  batchTimer = setTimeout(loadBatches, 80);
}

async function loadBatches() {
  try { batchState.batches = await api("GET", "/api/batches"); } catch (err) { return; }
  const box = $("batches");
  box.replaceChildren(...batchState.batches.map(batchCard));
  $("batches-empty").hidden = batchState.batches.length > 0;
  renderQueue();  // app.js: the queue lists the active batches too
}

function initBatches(examples) {
  renderBatchExamples(examples);
  const add = (kind) => (item) => {
    if (!batchState[kind].some((x) => x.ref === item.ref)) batchToggle(kind, item);
  };
  wireDrop($("batch-contents-drop"), $("batch-contents-file"),
    (files) => handleUploads(files, add("contents")));
  wireDrop($("batch-styles-drop"), $("batch-styles-file"),
    (files) => handleUploads(files, add("styles")));
  $("batch-start").addEventListener("click", startBatch);
  loadBatches();
}
