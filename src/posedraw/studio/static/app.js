// posedraw studio: wires the pose editor, the drawing controls, the live preview and the gallery to the
// server's JSON API (the same API scripts use; described at /openapi.json).

import { Editor } from "./editor.js";

const $ = (id) => document.getElementById(id);
const client = sessionStorage.getItem("posedraw-client") || `tab-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
sessionStorage.setItem("posedraw-client", client);

async function api(path, { method = "GET", json, body, type } = {}) {
  const init = { method, headers: {} };
  if (json !== undefined) { init.body = JSON.stringify(json); init.headers["Content-Type"] = "application/json"; }
  if (body !== undefined) { init.body = body; init.headers["Content-Type"] = type || "application/octet-stream"; }
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error || message; } catch { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

function say(message, isError = true) {
  $("message").textContent = message || "";
  $("message").style.color = isError ? "#f99" : "#9e9";
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---- drawing controls --------------------------------------------------------------------------------
let models = [];
const model = () => models.find((m) => m.name === $("model").value) || models[0];

function buildOptions() {
  const box = $("options");
  box.replaceChildren();
  for (const [name, option] of Object.entries(model().options)) {
    const label = document.createElement("label");
    label.textContent = option.flag.replace(/^--/, "");
    let input;
    if (option.choices.length) {
      input = document.createElement("select");
      for (const choice of option.choices) input.add(new Option(choice, choice, false, choice === option.default));
    } else {
      input = document.createElement("input");
      const numeric = typeof option.default === "number" || option.default === null;
      input.type = numeric ? "number" : "text";
      if (numeric) input.step = "any";
      input.value = option.default ?? "";
      input.placeholder = option.expected;
    }
    input.id = `option-${name}`;
    input.dataset.option = name;
    input.dataset.kind = typeof option.default === "string" ? "text" : "number";
    input.title = option.expected;
    label.appendChild(input);
    box.appendChild(label);
  }
}

function options() {
  const found = {};
  for (const input of $("options").querySelectorAll("[data-option]")) {
    const value = input.value.trim();
    if (value === "") continue;
    if (input.tagName === "SELECT" || input.dataset.kind === "text") found[input.dataset.option] = value;
    else found[input.dataset.option] = Number.isInteger(Number(value)) && !value.includes(".") ? parseInt(value, 10) : Number(value);
  }
  return found;
}

function setOptions(values) {
  for (const [name, value] of Object.entries(values || {})) {
    const input = $(`option-${name}`);
    if (input) input.value = value ?? "";
  }
}

function request(extra = {}) {
  return { pose: editor.doc(), model: model().name, options: options(), seed: Number($("seed").value) || 0,
    client, ...extra };
}

// ---- live preview: one request in flight, the newest pose waits; the shown drawing is never older than one request
const preview = { seq: 0, shown: 0, busy: false, next: null, failed: false };

function requestPreview(quality) {
  if (preview.busy) { preview.next = quality === "full" || preview.next === "full" ? "full" : quality; return; }
  sendPreview(quality);
}

async function sendPreview(quality) {
  preview.busy = true;
  const seq = ++preview.seq;
  try {
    const response = await api("/api/preview", { method: "POST", json: request({ seq, quality }) });
    const blob = await response.blob();
    if (seq > preview.shown) {
      preview.shown = seq;
      const img = $("drawing");
      const old = img.src;
      img.src = URL.createObjectURL(blob);
      img.dataset.seq = String(seq);
      img.dataset.quality = quality;
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      if (preview.failed) say("");
      preview.failed = false;
    }
  } catch (error) {
    if (error.status !== 409) { say(error.message); preview.failed = true; }
  } finally {
    preview.busy = false;
    if (preview.next) { const next = preview.next; preview.next = null; sendPreview(next); }
  }
}

// ---- the editor --------------------------------------------------------------------------------------
let editor;

async function importText(text, source) {
  let doc;
  try { doc = JSON.parse(text); } catch { say(`${source}: not JSON`); return; }
  try {
    const result = await (await api("/api/pose/import", { method: "POST", json: doc })).json();
    editor.setBackground(null);
    editor.load(result.pose);
    say(result.notes.length ? result.notes.join("; ") : `imported ${source}`, false);
  } catch (error) { say(error.message); }
}

async function photo(file) {
  try {
    const result = await (await api("/api/pose/detect", { method: "POST", body: file, type: file.type })).json();
    editor.load(result.pose);
    editor.setBackground(URL.createObjectURL(file), result.width, result.height);
    say("pose found in the photo: drag the joints to correct it", false);
  } catch (error) { say(error.message); }
}

async function exportPose() {
  const format = $("export-format").value;
  try {
    if (format === "png") {
      const blob = await (await api("/api/pose/skeleton", { method: "POST", json: editor.doc() })).blob();
      download(blob, "pose.png");
    } else {
      const doc = await (await api(`/api/pose/export?format=${format}`, { method: "POST", json: editor.doc() })).json();
      download(new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" }), `pose.${format}.json`);
    }
  } catch (error) { say(error.message); }
}

function bindEditor() {
  const sel = () => editor.selected();
  $("undo").onclick = () => editor.undo();
  $("redo").onclick = () => editor.redo();
  $("mirror").onclick = () => editor.edit((p) => p.mirror(editor.skeleton.mirror));
  $("add-person").onclick = () => {
    if (editor.pose.people.length >= model().max_people) { say(`${model().name} draws at most ${model().max_people} people`); return; }
    editor.edit((p) => p.addPerson());
  };
  $("remove-person").onclick = () => editor.edit((p) => p.removePerson(editor.selection[0]?.[0] ?? p.people.length - 1));
  $("rotate-left").onclick = () => editor.edit((p) => p.rotate(sel(), -15));
  $("rotate-right").onclick = () => editor.edit((p) => p.rotate(sel(), 15));
  $("grow").onclick = () => editor.edit((p) => p.scale(sel(), 1.1));
  $("shrink").onclick = () => editor.edit((p) => p.scale(sel(), 1 / 1.1));
  for (const state of ["visible", "occluded", "absent"]) {
    $(`state-${state}`).onclick = () => editor.edit((p) => p.setState(sel(), state));
  }
  $("person-prompt").onchange = () => {
    const input = $("person-prompt"), person = Number(input.dataset.person);
    if (editor.pose.people[person] && (editor.pose.people[person].prompt || "") !== input.value) {
      editor.edit((p) => p.setPrompt(person, input.value));
    }
  };
  // a press on the canvas may select someone else: the typed prompt goes to the person it was typed for first
  $("canvas").addEventListener("pointerdown", () => $("person-prompt").blur(), true);
  $("export").onclick = exportPose;
  $("import").onchange = async (e) => { const f = e.target.files[0]; if (f) await importText(await f.text(), f.name); e.target.value = ""; };
  $("photo").onchange = async (e) => { const f = e.target.files[0]; if (f) await photo(f); e.target.value = ""; };
  const canvas = $("canvas");
  canvas.addEventListener("dragover", (e) => { e.preventDefault(); canvas.classList.add("drop"); });
  canvas.addEventListener("dragleave", () => canvas.classList.remove("drop"));
  canvas.addEventListener("drop", async (e) => {
    e.preventDefault();
    canvas.classList.remove("drop");
    const f = e.dataTransfer.files[0];
    if (!f) return;
    if (f.type.startsWith("image/")) await photo(f); else await importText(await f.text(), f.name);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); e.shiftKey ? editor.redo() : editor.undo(); }
    else if ((e.ctrlKey || e.metaKey) && key === "y") { e.preventDefault(); editor.redo(); }
    else if (key === "r") editor.edit((p) => p.rotate(sel(), e.shiftKey ? 15 : -15));
    else if (e.key === "+") editor.edit((p) => p.scale(sel(), 1.1));
    else if (e.key === "-") editor.edit((p) => p.scale(sel(), 1 / 1.1));
  });
}

// The prompt field of the selected person: shown while the selection is one person's joints.
function showPersonPrompt() {
  const person = editor.selectedPerson();
  $("person-prompt-box").hidden = person === null;
  if (person === null) return;
  const input = $("person-prompt");
  if (input.dataset.person !== String(person) || document.activeElement !== input) {
    input.value = editor.pose.people[person].prompt || "";
  }
  input.dataset.person = String(person);
  $("person-prompt-who").textContent = `person ${person}`;
}

// ---- jobs and the gallery ----------------------------------------------------------------------------
let currentJob = null;

async function generate() {
  try {
    const job = await (await api("/api/jobs", { method: "POST", json: request({ count: Number($("count").value) || 1 }) })).json();
    if (job.notes?.length) say(job.notes.join("; "), false);
    follow(job);
  } catch (error) { say(error.message); }
}

function follow(job) {
  currentJob = job.id;
  $("cancel").disabled = false;
  $("progress").max = job.progress.total;
  const events = new EventSource(`/api/jobs/${job.id}/events`);
  events.onmessage = (message) => {
    const state = JSON.parse(message.data);
    $("progress").value = state.progress.done;
    $("status").textContent = `job ${state.id}: ${state.status} ${state.progress.done}/${state.progress.total}`;
    if (state.images.length) refreshGallery();
    if (["done", "failed", "cancelled"].includes(state.status)) {
      events.close();
      $("cancel").disabled = true;
      if (state.error) say(state.error);
    }
  };
}

async function refreshGallery() {
  const items = await (await api("/api/images")).json();
  const box = $("gallery");
  box.replaceChildren();
  for (const item of items) {
    const div = document.createElement("div");
    div.className = "item";
    div.dataset.name = item.name;
    const img = new Image();
    img.src = item.url;
    img.alt = item.name;
    const caption = document.createElement("div");
    caption.textContent = `${item.model} · seed ${item.seed}${item.options.prompt ? ` · ${item.options.prompt}` : ""}`;
    const actions = document.createElement("div");
    actions.className = "actions";
    const load = document.createElement("button");
    load.textContent = "Load";
    load.title = "Load this image's pose and settings";
    load.className = "load";
    load.onclick = () => loadRecipe(item);
    const save = document.createElement("a");
    save.href = item.url;
    save.download = item.name;
    save.textContent = "Download";
    actions.append(load, save);
    if (tuning.available) {
      const tune = document.createElement("button");
      tune.textContent = "Tune";
      tune.title = "CLIP-tune this drawing towards the prompt above";
      tune.className = "tune";
      tune.onclick = () => tuneImage(item.name);
      actions.append(tune);
    }
    div.append(img, caption, actions);
    box.appendChild(div);
  }
}

let tuning = { available: false };

async function tuneImage(name) {
  const prompts = $("tune-prompt").value.split("|").map((p) => p.trim()).filter(Boolean);
  try {
    const job = await (await api("/api/tune", { method: "POST",
      json: { image: name, prompts, steps: Number($("tune-steps").value) || 50, client } })).json();
    follow(job);
  } catch (error) { say(error.message); }
}

function loadRecipe(item) {
  if (models.some((m) => m.name === item.model)) { $("model").value = item.model; buildOptions(); }
  setOptions(item.options);
  $("seed").value = item.seed;
  editor.load(item.pose);
  say(`loaded the recipe of ${item.name}`, false);
}

// ---- start -------------------------------------------------------------------------------------------
async function start() {
  const [skeleton, presets] = await Promise.all([(await api("/api/skeleton")).json(), (await api("/api/presets")).json()]);
  models = await (await api("/api/models")).json();
  for (const m of models) $("model").add(new Option(`${m.name} (${m.kind})`, m.name));
  for (const name of Object.keys(presets)) $("preset").add(new Option(name.replace("_", " "), name));
  buildOptions();
  editor = new Editor($("canvas"), skeleton, {
    onLive: () => { if ($("live").checked) requestPreview("preview"); },
    onCommit: () => requestPreview("full"),
    onRender: () => showPersonPrompt(),
  });
  bindEditor();
  $("preset").onchange = () => { if ($("preset").value) editor.load(presets[$("preset").value]); $("preset").value = ""; };
  $("model").onchange = () => { buildOptions(); requestPreview("full"); };
  $("options").onchange = () => requestPreview("full");
  $("seed").onchange = () => requestPreview("full");
  $("dice").onclick = () => { $("seed").value = Math.floor(Math.random() * 2 ** 31); requestPreview("full"); };
  $("generate").onclick = generate;
  $("cancel").onclick = async () => { if (currentJob) await api(`/api/jobs/${currentJob}`, { method: "DELETE" }); };
  tuning = await (await api("/api/tune")).json();
  $("tune-bar").hidden = !tuning.available;
  $("tune-clip").textContent = tuning.available ? `with ${tuning.clip}` : "";
  editor.load(presets.standing, { record: false });
  await refreshGallery();
  document.body.dataset.ready = "true";
}

start().catch((error) => say(`could not start: ${error.message}`));
