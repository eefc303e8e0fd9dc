// impasto studio: the single page. Vanilla JS, no build step; it uses only the documented
// HTTP API (see /api and /openapi.json).
"use strict";

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["queued", "running"]);
const TERMINAL = new Set(["done", "failed", "cancelled", "interrupted"]);

const state = {
  config: null,
  content: null,        // {ref, name, thumb_url}
  styles: [],           // [{ref, name, thumb_url, weight}]
  watching: null,       // job id shown on the stage
  watchSource: null,    // EventSource of that job
  previewVersion: -1,
  jobs: [],
  progress: new Map(),  // id -> the latest view of a running job from its event stream
  queueSources: new Map(),  // id -> EventSource of a running job the stage does not show
  offline: false,       // the server did not answer: shown in a banner until it does
};

// ---------------------------------------------------------------------------------------- api

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {  // no answer at all: the browser's own words ("Failed to fetch") say little
    throw new Error("the server is not answering (stopped?); try again once it is back");
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    let msg = data && data.detail !== undefined ? data.detail : res.statusText;
    // pydantic's list: "settings.size: ..." (the leading "body" says nothing to a user)
    if (Array.isArray(msg)) msg = msg.map((d) => `${(d.loc || []).filter((p, i) => i > 0 || p !== "body").join(".")}: ${d.msg}`).join("; ");
    throw new Error(String(msg));
  }
  return data;
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// a live region re-announces text written again, even the same: write only what changed
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// re-render a list without losing the keyboard focus: the element with the focused one's
// data-key gets it back (or `next`, a data-key or element, when given)
function keepFocus(box, renderFn, next) {
  const active = document.activeElement;
  const key = next !== undefined ? next
    : active && box.contains(active) ? active.dataset.key : undefined;
  renderFn();
  if (key instanceof Element) { key.focus(); return; }
  if (!key) return;
  const target = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (target) target.focus();
}

// ------------------------------------------------------------------------------------ format

function fmtNum(x, digits = 3) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-2) {
    const [m, e] = x.toExponential(digits - 1).split("e");
    return `${String(Number(m))}e${Number(e)}`;
  }
  return String(Number(x.toPrecision(digits)));
}

function fmtTime(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function describe(job) {
  const s = job.settings || {};
  const names = [job.content ? job.content.name : "texture"]
    .concat((job.styles || []).map((st) => st.name));
  const parts = [`${s.size}px`, `${s.iterations} it`, `β/α ${fmtNum(s.style_weight / s.content_weight, 2)}`];
  if (s.preserve_colors && s.preserve_colors !== "none") parts.push(s.preserve_colors);
  parts.push(`seed ${s.seed}`);
  return { title: names.join(" × "), meta: parts.join(" · ") };
}

// ------------------------------------------------------------------------------------ inputs

async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const info = await api("POST", "/api/files", form);
  return { ref: info.id, name: info.name, thumb_url: info.thumb_url };
}

function setContent(item) {
  state.content = item;
  const img = $("content-thumb");
  img.hidden = !item;
  if (item) img.src = item.thumb_url;
  else img.removeAttribute("src");
  $("content-hint").hidden = !!item;
  $("content-name").textContent = item ? item.name : "";
  $("content-clear").hidden = !item;
  if (item) $("content-clear").setAttribute("aria-label", `remove ${item.name}`);
  markChips();
  formChanged();
}

function addStyle(item) {
  const max = state.config ? state.config.limits.max_styles : 8;
  if (state.styles.some((s) => s.ref === item.ref)) return;
  if (state.styles.length >= max) { toast(`at most ${max} style images`); return; }
  state.styles.push({ weight: 1, ...item });
  renderStyles();
}

function removeStyle(ref) {
  state.styles = state.styles.filter((s) => s.ref !== ref);
  renderStyles();
}

function renderStyles() {
  const list = $("style-list");
  list.replaceChildren();
  for (const st of state.styles) {
    const weight = el("input", {
      type: "range", min: "0.1", max: "3", step: "0.1", value: String(st.weight),
      title: "blend weight", "aria-label": `blend weight of ${st.name}`,
    });
    const shown = el("small", {}, `weight ${st.weight.toFixed(1)}`);
    weight.addEventListener("input", () => {
      st.weight = parseFloat(weight.value);
      shown.textContent = `weight ${st.weight.toFixed(1)}`;
    });
    list.append(el("li", {},
      el("img", { src: st.thumb_url, alt: "" }),
      el("div", {}, el("div", { class: "name", title: st.name }, st.name), weight, shown),
      el("button", { type: "button", class: "link", onclick: () => removeStyle(st.ref),
        "aria-label": `remove ${st.name}` }, "remove")));
  }
  markChips();
  formChanged();
}

function markChips() {
  for (const chip of document.querySelectorAll(".chip")) {
    const ref = chip.dataset.ref;
    const on = chip.dataset.kind === "content"
      ? state.content && state.content.ref === ref
      : state.styles.some((s) => s.ref === ref);
    chip.classList.toggle("selected", !!on);
    chip.setAttribute("aria-pressed", on ? "true" : "false");
  }
}

function renderExamples(examples) {
  for (const ex of examples) {
    const item = { ref: ex.ref, name: ex.name, thumb_url: ex.thumb_url };
    const chip = el("button", {
      type: "button", class: "chip", title: ex.name, "data-ref": ex.ref, "data-kind": ex.kind,
      "aria-pressed": "false",
      onclick: () => {  // a second click on the chip picked drops it again (a texture)
        const picked = state.content && state.content.ref === ex.ref;
        if (ex.kind === "content") setContent(picked ? null : item);
        else if (state.styles.some((s) => s.ref === ex.ref)) removeStyle(ex.ref);
        else addStyle(item);
      },
    }, el("img", { src: ex.thumb_url, alt: ex.name }));
    $(ex.kind === "content" ? "content-examples" : "style-examples").append(chip);
  }
}

function wireDrop(zone, input, onFiles) {
  input.addEventListener("change", () => { onFiles([...input.files]); input.value = ""; });
  input.addEventListener("keydown", (e) => {  // Space opens the chooser everywhere, Enter too
    if (e.key === "Enter") { e.preventDefault(); input.click(); }
  });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    onFiles([...e.dataTransfer.files]);
  });
}

async function handleUploads(files, onItem) {
  for (const f of files) {
    try {
      onItem(await upload(f));
    } catch (err) {
      toast(`${f.name}: ${err.message}`);
    }
  }
}

// ---------------------------------------------------------------------------------- settings

const NUMBER_FIELDS = ["size", "iterations", "content_weight", "style_weight", "tv_weight",
  "style_scale", "pyramid_start", "pyramid_iterations", "margin"];
const INT_FIELDS = new Set(["size", "iterations", "pyramid_start", "pyramid_iterations", "margin"]);
const SELECT_FIELDS = ["preserve_colors", "init", "optimizer", "pooling", "loss_scale", "device"];

function fillSettings(s) {
  for (const k of NUMBER_FIELDS) if (s[k] !== undefined && s[k] !== null) $(k).value = s[k];
  for (const k of SELECT_FIELDS) {
    if (s[k] === undefined || s[k] === null) continue;
    const known = Array.from($(k).options).some((o) => o.value === String(s[k]));
    // a value the form cannot offer (a resumed job's start image) falls back to the default
    $(k).value = known ? s[k] : state.config.defaults[k];
  }
  $("seed").value = s.seed === null || s.seed === undefined ? "" : s.seed;
  syncStrength();
}

// a field's name as its label shows it ("Size", "Iterations")
function fieldName(input) {
  const label = input.labels && input.labels[0];
  const text = label && label.firstChild ? label.firstChild.textContent.trim() : "";
  return text || input.name || input.id;
}

// the number in a number field (1e2 is 100; blank: undefined); a whole-number field refuses
// a fraction rather than cutting it (parseInt read 1e2 as 1)
function readNumber(id, whole) {
  const input = $(id);
  if (input.value.trim() === "") return undefined;
  const v = input.valueAsNumber;
  if (!isFinite(v)) throw new Error(`${fieldName(input)}: ${input.value} is not a number`);
  if (whole && !Number.isInteger(v)) {
    throw new Error(`${fieldName(input)} must be a whole number, not ${input.value}`);
  }
  return v;
}

function readSettings() {
  const out = {};
  for (const k of NUMBER_FIELDS) {
    const v = readNumber(k, INT_FIELDS.has(k));
    if (v !== undefined) out[k] = v;
  }
  for (const k of SELECT_FIELDS) out[k] = $(k).value;
  const seed = readNumber("seed", true);
  out.seed = seed === undefined ? null : seed;
  return out;
}

// what keeps the form from being sent (the browser's check, as Start runs it), or null
function formProblem() {
  const bad = Array.from($("job-form").elements).find((e) => e.willValidate && !e.validity.valid);
  if (!bad) return null;
  return { input: bad, missing: bad.validity.valueMissing,
    text: `${fieldName(bad)}: ${bad.validationMessage}` };
}

// the dial's words: its label and its aria-valuetext say the same thing, always
function showStrength(label, valuetext) {
  $("ratio").textContent = label;
  $("strength").setAttribute("aria-valuetext", valuetext);
}

// why a weight gives no finite log β/α ("α is 0", "α is blank")
const weightWhy = (name, input) => `${name} is ${input.value.trim() || "blank"}`;

function syncStrength() {
  const a = parseFloat($("content_weight").value), b = parseFloat($("style_weight").value);
  if (a > 0 && b > 0) {
    const r = Math.log10(b / a);
    $("strength").value = String(r);
    showStrength(r.toFixed(1), `β/α = ${fmtNum(b / a, 2)}`);
  } else if (!(a > 0)) {  // no β/α at all: the slider's place says nothing, and nor may its words
    const why = weightWhy("α", $("content_weight"));
    showStrength(`– (${why})`, `no β/α (${why})`);
  } else {  // β/α is 0: its log is -∞
    const why = weightWhy("β", $("style_weight"));
    showStrength(`−∞ (${why})`, `β/α = 0 (${why})`);
  }
}

function setBetaOverAlpha(ratio) {
  // beta = alpha * ratio, to 3 significant digits
  const a = parseFloat($("content_weight").value) || 1;
  $("style_weight").value = String(Number((a * ratio).toPrecision(3)));
}

function lossScaleChanged() {
  // beta's and TV's units change with the loss scale: start from that scale's defaults
  const scale = $("loss_scale").value;
  const beta = state.config.style_weight_defaults[scale];
  if (beta !== undefined) setBetaOverAlpha(beta);
  const tv = state.config.tv_weight_defaults[scale];
  if (tv !== undefined) $("tv_weight").value = String(tv);
  syncStrength();
}

function strengthChanged() {
  const r = parseFloat($("strength").value);
  // with α = 0 there is no β/α for the slider to move: α goes back to 1 first (the engine's
  // default), and that is said; the slider then sets β = 10^r as always
  const alpha = $("content_weight");
  if (!(parseFloat(alpha.value) > 0)) {
    const why = weightWhy("α", alpha);
    alpha.value = "1";
    toast(`${why}: set to 1, so the Style strength slider sets β/α`);
  }
  setBetaOverAlpha(10 ** r);
  showStrength(r.toFixed(1), `β/α = ${fmtNum(10 ** r, 2)}`);
}

// ---------------------------------------------------------------- estimate and form errors

function jobBody() {
  return {
    content: state.content ? state.content.ref : null,
    styles: state.styles.map((s) => ({ image: s.ref, weight: s.weight })),
    settings: readSettings(),
  };
}

let estimateTimer = null;
function formChanged() {
  $("form-error").textContent = "";  // a stale error would describe other settings
  $("batch-error").textContent = "";  // the batch runs with these settings too
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(updateEstimate, 300);
  if (typeof batchEstimateSoon === "function") batchEstimateSoon();  // same settings
}

// The estimate lines of a job (here) and of a batch (batch.js) say the same things the same way.
function estimateText(est) {  // "1 min 6 s on cpu (measured on this server)"
  const how = est.measured ? "measured on this server" : "first guess, until a job is measured";
  return `${fmtTime(est.seconds)} on ${est.device} (${how})`;
}

function problemText(problem) {  // why no time is shown: Start would refuse the form
  return problem.missing ? `the form is incomplete: ${problem.text}`
    : `not startable: ${problem.text}`;
}

const capitalised = (text) => text.charAt(0).toUpperCase() + text.slice(1);

async function updateEstimate() {
  const out = $("estimate");
  if (!state.content && state.styles.length === 0) { out.textContent = ""; return; }
  const problem = formProblem();  // no time for settings that would not be sent
  if (problem) { out.textContent = capitalised(problemText(problem)); return; }
  try {
    const est = await api("POST", "/api/estimate", jobBody());
    out.textContent = `About ${estimateText(est)}.`;
  } catch (err) {
    out.textContent = `Not startable: ${err.message}`;
  }
}

function setOffline(offline) {
  if (state.offline === offline) return;
  state.offline = offline;
  $("offline").hidden = !offline;
  if (!offline) {  // back: everything may have changed meanwhile
    $("form-error").textContent = "";  // an error from while it was away no longer holds
    updateEstimate();
    loadJobs();
    if (typeof loadBatches === "function") loadBatches();
    if (state.watching) watch(state.watching);
  } else {
    $("stat-eta").textContent = "–";
    for (const span of document.querySelectorAll("#queue .left")) setText(span, "");
  }
}

async function start(e) {
  e.preventDefault();
  $("form-error").textContent = "";
  if (!state.content && state.styles.length === 0) {
    $("form-error").textContent = "Pick a content photo and at least one style image.";
    return;
  }
  const btn = $("start");
  btn.disabled = true;
  try {
    const job = await api("POST", "/api/jobs", jobBody());
    watch(job.id, job);
    refreshJobs();
  } catch (err) {
    $("form-error").textContent = err.message;
  } finally {
    btn.disabled = false;
  }
}

// -------------------------------------------------------------------------------- the stage

function watch(id, initial) {
  if (state.watchSource) { state.watchSource.close(); state.watchSource = null; }
  state.watching = id;
  state.previewVersion = -1;
  if (initial) render(initial);
  const src = new EventSource(`/api/jobs/${id}/events`);
  state.watchSource = src;
  src.onerror = () => { if (src.readyState !== EventSource.CLOSED) setOffline(true); };
  src.onmessage = (ev) => {
    const view = JSON.parse(ev.data);
    if (view.status === "deleted") {
      src.close();
      if (state.watching === id) clearStage();
      return;
    }
    if (state.watching === id) render(view);
    if (TERMINAL.has(view.status)) {
      src.close();
      if (state.watchSource === src) state.watchSource = null;
      refreshJobs();
    }
  };
  highlightCurrent();
  followQueue();
}

function renderNotes(notes) {
  const list = $("job-notes");
  list.replaceChildren(...notes.map((n) => el("li", { class: n.warning ? "warning" : "" }, n.text)));
}

function render(job) {
  const { title } = describe(job);
  setText($("job-title"), title);
  const badge = $("job-status");
  badge.hidden = false;
  badge.className = `badge ${job.status}`;
  setText(badge, job.status === "queued" && job.position
    ? `queued · #${job.position}` : job.status);
  const total = job.total_steps || (job.settings && job.settings.iterations) || 0;
  const pct = job.status === "done" ? 100 : total ? Math.min(100, (100 * job.step) / total) : 0;
  $("bar").style.width = `${pct}%`;
  $("progress").setAttribute("aria-valuenow", String(Math.round(pct)));
  const tile = job.status === "running" && job.tile
    ? ` · pass ${job.tile.phase}, tile ${job.tile.tile}/${job.tile.tiles}` : "";
  $("stat-step").textContent = total ? `${job.step} / ${total}${tile}` : "–";
  renderNotes(job.notes || []);
  $("stat-loss").textContent = fmtNum(job.loss);
  const l = job.losses || {};
  $("stat-parts").textContent = l.content !== undefined || l.style !== undefined
    ? `${fmtNum(l.content)} · ${fmtNum(l.style)}` : "–";
  $("stat-elapsed").textContent = fmtTime(job.elapsed);
  $("stat-eta").textContent = state.offline ? "–" : job.status === "running" ? fmtTime(job.eta)
    : job.status === "queued" ? "waiting" : job.status === "done" ? "done" : "–";
  setText($("job-error"), job.error || "");
  queueProgress(job);

  const img = $("preview");
  if (job.preview_url && job.preview_version !== state.previewVersion) {
    state.previewVersion = job.preview_version;
    img.src = job.preview_url;
    img.hidden = false;
    $("preview-empty").hidden = true;
  } else if (!job.preview_url) {
    img.hidden = true;
    img.removeAttribute("src");
    $("preview-empty").hidden = false;
    $("preview-empty").textContent = job.status === "queued"
      ? `Waiting in the queue (position ${job.position || "?"}).` : "Starting…";
  }
  $("cancel").hidden = !ACTIVE.has(job.status);
  $("resume").hidden = !job.can_resume;
  const dl = $("download");
  const image = job.result_url || job.partial_url;
  dl.hidden = !image;
  if (image) {
    dl.href = `${image}?download=true`;
    dl.textContent = job.result_url ? "Download PNG" : "Download last image";
    const tail = job.result_url ? "" : "-partial";
    dl.setAttribute("download", `impasto-${job.id.slice(0, 8)}${tail}.png`);
  }
  const ds = $("download-settings");
  ds.hidden = false;
  ds.href = `${job.settings_url}?download=true`;
  ds.setAttribute("download", `impasto-${job.id.slice(0, 8)}.json`);
}

let STAGE_HINT = "";  // the empty stage's words (index.html), kept at init

function clearStage() {
  // no job on the stage (its job was deleted): nothing of it may stay, least of all its links
  if (state.watchSource) { state.watchSource.close(); state.watchSource = null; }
  state.watching = null;
  state.previewVersion = -1;
  setText($("job-title"), "No job selected");
  const badge = $("job-status");
  badge.hidden = true;
  badge.className = "badge";
  setText(badge, "");
  $("bar").style.width = "0%";
  $("progress").removeAttribute("aria-valuenow");
  for (const id of ["stat-step", "stat-loss", "stat-parts", "stat-elapsed", "stat-eta"]) {
    $(id).textContent = "–";
  }
  setText($("job-error"), "");
  renderNotes([]);
  const img = $("preview");
  img.hidden = true;
  img.removeAttribute("src");
  $("preview-empty").hidden = false;
  $("preview-empty").textContent = STAGE_HINT;
  for (const id of ["cancel", "resume", "download", "download-settings"]) $(id).hidden = true;
  for (const id of ["download", "download-settings"]) {
    $(id).removeAttribute("href");
    $(id).removeAttribute("download");
  }
  highlightCurrent();
  followQueue();
}

async function deleteJob(job) {
  // the keyboard focus was on the card's delete: it goes to the next card (the previous one
  // for the last), or to the gallery's heading when none is left
  const cards = Array.from(document.querySelectorAll("#gallery .card"));
  const at = cards.findIndex((c) => c.dataset.id === job.id);
  const hadFocus = at >= 0 && cards[at].contains(document.activeElement);
  try {
    await api("DELETE", `/api/jobs/${job.id}`);
  } catch (err) {
    toast(`delete: ${err.message}`);
    return;
  }
  if (state.watching === job.id) clearStage();
  const rest = cards.filter((c) => c.dataset.id !== job.id);
  const neighbour = rest[Math.min(at, rest.length - 1)];
  const next = !hadFocus ? undefined
    : neighbour ? `${neighbour.dataset.id}:show` : $("gallery-heading");
  await loadJobs(next);
}

async function jobAction(url, what) {
  try {
    const job = await api("POST", url);
    if (job && job.id !== state.watching && ACTIVE.has(job.status)) watch(job.id, job);
    refreshJobs();
    return job;
  } catch (err) {
    toast(`${what}: ${err.message}`);
    return null;
  }
}

// -------------------------------------------------------------------------- queue + gallery

let refreshTimer = null;
function refreshJobs() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(loadJobs, 80);
}

async function loadJobs(focusNext) {
  try {
    state.jobs = await api("GET", "/api/jobs?limit=200");
  } catch (err) {
    if (focusNext instanceof Element) focusNext.focus();
    return;
  }
  renderQueue();
  keepFocus($("gallery"), renderGallery, focusNext);
  if (!state.watching) {
    const running = state.jobs.find((j) => j.status === "running");
    if (running) watch(running.id, running);
  }
}

function renderQueue() {
  const active = state.jobs.filter((j) => ACTIVE.has(j.status))
    .sort((a, b) => (a.status === "running" ? -1 : b.status === "running" ? 1
      : (a.position || 0) - (b.position || 0)));
  for (const id of state.progress.keys()) {  // only running jobs' progress is kept
    if (!active.some((j) => j.id === id && j.status === "running")) state.progress.delete(id);
  }
  const list = $("queue");
  keepFocus(list, () => fillQueue(list, active));
  followQueue();
}

// A running job's time left in the queue is the stage's ETA for it, as its progress arrives:
// the list (GET /api/jobs) is loaded only when a job changes status, so its eta is the one of
// that moment (none yet, at the start). Progress updates that entry's text in place: the list
// is not redrawn on every event (the keyboard focus stays where it is).
function timeLeft(job) {
  return !state.offline && job.status === "running" && job.eta !== null && job.eta !== undefined
    ? `${fmtTime(job.eta)} left` : "";
}

// the newest view of a listed job: its progress event, when that is newer than the list
function latest(job) {
  const seen = state.progress.get(job.id);
  return seen && seen.step >= job.step ? seen : job;
}

function queueProgress(view) {
  if (view.status !== "running") { state.progress.delete(view.id); return; }
  state.progress.set(view.id, view);
  const span = document.querySelector(`#queue .left[data-left="${CSS.escape(view.id)}"]`);
  if (span) { const time = timeLeft(view); setText(span, time ? ` · ${time}` : ""); }
}

// the stage's event stream follows the job it shows; each other running job's stream is
// followed here for its time left in the queue
function followQueue() {
  const want = new Set(state.jobs.filter((j) => j.status === "running" && j.id !== state.watching)
    .map((j) => j.id));
  for (const [id, src] of state.queueSources) {
    if (!want.has(id)) { src.close(); state.queueSources.delete(id); }
  }
  for (const id of want) {
    if (state.queueSources.has(id)) continue;
    const src = new EventSource(`/api/jobs/${id}/events`);
    state.queueSources.set(id, src);
    src.onmessage = (ev) => {
      const view = JSON.parse(ev.data);
      if (view.status !== "deleted") queueProgress(view);
      if (view.status === "deleted" || TERMINAL.has(view.status)) {
        src.close();
        if (state.queueSources.get(id) === src) state.queueSources.delete(id);
      }
    };
  }
}

function fillQueue(list, active) {
  list.replaceChildren();
  for (const job of active) {
    const d = describe(job);
    const pos = job.status === "running" ? "running" : `#${job.position || "?"}`;
    const time = job.status === "running" ? timeLeft(latest(job))
      : job.estimate ? `≈ ${fmtTime(job.estimate)}` : "";
    list.append(el("li", { "data-id": job.id },
      el("button", { type: "button", class: "open", title: "show on the stage",
        "data-key": `${job.id}:show`, onclick: () => watch(job.id, job) },
        el("span", { class: "pos" }, pos),
        el("span", {}, `${d.title} `, el("small", {}, d.meta,
          el("span", { class: "left", "data-left": job.id }, time ? ` · ${time}` : "")))),
      el("button", { type: "button", class: "link", "data-key": `${job.id}:cancel`,
        "aria-label": `cancel ${d.title}`,
        onclick: () => jobAction(`/api/jobs/${job.id}/cancel`, "cancel") }, "cancel")));
  }
  // a batch is one entry of the same queue (its jobs are listed in the Batch panel)
  const batches = (typeof batchState === "undefined" ? [] : batchState.batches)
    .filter((b) => b.status === "queued" || b.status === "running");
  for (const b of batches) {
    const pos = b.status === "running" ? "running" : `#${b.position || "?"}`;
    const left = b.status === "running" && b.eta !== null ? ` · ${fmtTime(b.eta)} left` : "";
    list.append(el("li", { class: "batch-entry", title: "see the Batch panel" },
      el("span", { class: "pos" }, pos),
      el("span", {}, `batch: ${b.contents.length} photo(s) × ${b.styles.length} painting(s) `,
        el("small", {}, `${b.done}/${b.total} done${left}`))));
  }
  $("queue-empty").hidden = active.length + batches.length > 0;
}

async function loadIntoForm(job) {
  // a resumed job ran from its parent's partial image for the remaining iterations: what the
  // user chose are the parent's settings, where the parent is still there
  let chosen = job;
  if (job.origin === "resume" && job.parent) {
    try { chosen = await api("GET", `/api/jobs/${job.parent}`); } catch (e) { chosen = job; }
  }
  fillSettings(chosen.settings);
  setContent(job.content ? { ref: job.content.ref, name: job.content.name,
    thumb_url: job.content.thumb_url } : null);
  state.styles = (job.styles || []).map((s) => ({ ref: s.ref, name: s.name,
    thumb_url: s.thumb_url, weight: s.weight }));
  renderStyles();
  toast("Inputs and settings loaded: change them and press Start.");
}

function renderGallery() {
  const done = state.jobs.filter((j) => !ACTIVE.has(j.status));
  const box = $("gallery");
  box.replaceChildren();
  for (const job of done) {
    const d = describe(job);
    const thumb = el("button", { type: "button", class: "thumb", onclick: () => watch(job.id, job),
      title: "show on the stage", "aria-label": `show ${d.title} on the stage`,
      "data-key": `${job.id}:show` });
    if (job.preview_url) {
      thumb.append(el("img", { src: job.preview_url, alt: "", loading: "lazy" }));
    }
    // each button says whose it is: a list of "delete, delete, delete" tells a reader nothing
    const act = (what, attrs, onclick) => el("button", { type: "button", class: "link",
      "aria-label": `${what} ${d.title}`, "data-key": `${job.id}:${what}`, onclick, ...attrs },
      what);
    const buttons = el("div", { class: "buttons" },
      act("re-run", { title: "same inputs, settings and seed" },
        () => jobAction(`/api/jobs/${job.id}/rerun`, "re-run")),
      act("edit", {}, () => loadIntoForm(job)),
      job.can_resume ? act("resume", {},
        () => jobAction(`/api/jobs/${job.id}/resume`, "resume")) : null,
      job.result_url ? el("a", { class: "link", href: `${job.result_url}?download=true`,
        "aria-label": `png of ${d.title}`, "data-key": `${job.id}:png`,
        download: `impasto-${job.id.slice(0, 8)}.png` }, "png") : null,
      job.partial_url ? el("a", { class: "link", href: `${job.partial_url}?download=true`,
        title: "the last image before it stopped", "aria-label": `last image of ${d.title}`,
        "data-key": `${job.id}:last`,
        download: `impasto-${job.id.slice(0, 8)}-partial.png` }, "last image") : null,
      act("delete", {}, () => deleteJob(job)));
    box.append(el("article", { class: "card", "data-id": job.id },
      thumb,
      el("div", { class: "body" },
        el("div", { class: "row" }, el("strong", {}, d.title),
          el("span", { class: `badge ${job.status}` }, job.status)),
        el("div", { class: "meta" }, d.meta),
        job.error ? el("div", { class: "error" }, job.error) : null,
        buttons)));
  }
  $("gallery-empty").hidden = done.length > 0;
  highlightCurrent();
}

function highlightCurrent() {
  for (const card of document.querySelectorAll(".card")) {
    card.classList.toggle("current", card.dataset.id === state.watching);
  }
}

// -------------------------------------------------------------------------------------- init

async function init() {
  const cfg = await api("GET", "/api/config");
  state.config = cfg;
  $("server-info").textContent = `v${cfg.version}`;
  for (const [field, values] of Object.entries(cfg.choices)) {
    const sel = $(field);
    if (!sel) continue;
    for (const v of values) sel.append(el("option", { value: v }, v));
  }
  $("size").max = String(cfg.limits.max_size);
  const gb = (cfg.memory.budget / 1e9).toFixed(1);
  $("size-limit").textContent = ` ≤ ${cfg.limits.max_size}`;
  $("size").title = `up to ${cfg.limits.max_size} px within this server's ${gb} GB memory `
    + `budget (${cfg.memory.source}); large sizes run in exact tiles`;
  $("iterations").max = String(cfg.limits.max_iterations);
  fillSettings({ ...cfg.defaults, size: 384, seed: null });  // the engine's defaults, smaller
  renderExamples(cfg.examples);
  if (typeof initBatches === "function") initBatches(cfg.examples);  // batch.js

  STAGE_HINT = $("preview-empty").textContent;
  wireDrop($("content-drop"), $("content-file"), (files) => {
    if (files.length > 1) {  // one photo per job: say which one was taken
      toast(`One content photo per job: took ${files[0].name}, not the other `
        + `${files.length - 1} (the Batch panel takes several).`);
    }
    handleUploads(files.slice(0, 1), setContent);
  });
  $("content-clear").addEventListener("click", () => {
    setContent(null);
    $("content-file").focus();  // the button is gone: the drop area is where it was
  });
  // a field refused inside the closed "More settings" could not show why: open it
  $("job-form").addEventListener("invalid", (e) => {
    const box = e.target.closest("details");
    if (box) box.open = true;
  }, true);
  wireDrop($("style-drop"), $("style-file"), (files) => handleUploads(files, addStyle));
  $("job-form").addEventListener("submit", start);
  $("strength").addEventListener("input", strengthChanged);
  $("content_weight").addEventListener("input", syncStrength);
  $("style_weight").addEventListener("input", syncStrength);
  $("loss_scale").addEventListener("change", lossScaleChanged);
  $("cancel").addEventListener("click", () => {
    if (state.watching) jobAction(`/api/jobs/${state.watching}/cancel`, "cancel");
  });
  $("resume").addEventListener("click", () => {
    if (state.watching) jobAction(`/api/jobs/${state.watching}/resume`, "resume");
  });

  $("job-form").addEventListener("input", formChanged);
  $("job-form").addEventListener("change", formChanged);
  const all = new EventSource("/api/events");  // reconnects by itself (retry: 2 s)
  all.onopen = () => setOffline(false);
  all.onerror = () => setOffline(true);
  all.onmessage = (ev) => {
    let data = {};
    try { data = JSON.parse(ev.data) || {}; } catch (e) { data = {}; }
    // the job on the stage deleted elsewhere (another tab, the API): its stream was closed
    if (data.status === "deleted" && data.id === state.watching) clearStage();
    if (data.kind === "batch") refreshBatches(); else refreshJobs();
  };
  await loadJobs();
}

init().catch((err) => toast(`could not load the studio: ${err.message}`));
