// ferkit curate: one face at a time, labelled by keyboard. Every action is a POST the server stores at once.
"use strict";
const tab = (sessionStorage.getItem("ferkit-tab") || (() => {
  const t = "tab-" + Math.random().toString(36).slice(2, 10);
  sessionStorage.setItem("ferkit-tab", t);
  return t;
})());
const $ = (id) => document.getElementById(id);
let classes = [], current = null, busy = false, labelled = 0;
// While a request is out, keys are ignored; body[data-busy] says so (scripts wait for it to clear).
function setBusy(b) { busy = b; document.body.dataset.busy = b ? "1" : ""; }

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body) {
  const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(Object.assign({tab}, body))};
  const r = await fetch(path, opts);
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function showProgress(p) {
  $("progress").textContent = `${p.labelled} / ${p.total} labelled`;
  $("progress").dataset.labelled = p.labelled;
  $("progress").dataset.total = p.total;
}

function fmt(obj, digits) {
  if (!obj) return "–";
  return Object.entries(obj).sort((a, b) => b[1] - a[1]).slice(0, 5)
    .map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(digits) : v}`).join(", ");
}

function show(face) {
  current = face;
  $("face").hidden = !face;
  $("empty").hidden = !!face;
  document.body.dataset.face = face ? face.id : "";
  if (!face) return;
  $("crop").src = `/api/face/${face.id}/crop`;
  $("context").src = `/api/face/${face.id}/context`;
  $("note").value = "";
  const models = face.models ? Object.entries(face.models).map(([m, v]) => `${m}: ${v.emotion} ${(v.confidence ?? 0).toFixed(2)}`).join("; ") : "";
  const aus = face.aus ? Object.entries(face.aus).filter(([, v]) => v >= 0.5).map(([k]) => k).join(" ") || "none" : "–";
  const rows = [
    ["reasons", face.reasons.join(", ")],
    ["guess", `${face.emotion ?? "–"} ${face.confidence != null ? face.confidence.toFixed(2) : ""}`],
    ["models", models || "–"],
    ["probabilities", fmt(face.probabilities, 2)],
    ["AUs present", aus],
    ["speaking", face.speaking != null ? face.speaking.toFixed(2) : "–"],
    ["source", `${face.source} @ ${face.timestamp != null ? face.timestamp.toFixed(2) + " s" : "still"} (track ${face.track})`],
  ];
  $("meta").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.dataset.field = k;
    return [dt, dd];
  }));
  $("guess").textContent = face.emotion ? `(${face.emotion})` : "";
  for (const li of $("classes").children) li.classList.toggle("guess", li.dataset.label === face.emotion);
}

async function next() {
  const reason = $("reason").value;
  const data = await api(`/api/next?tab=${tab}&n=1&reason=${encodeURIComponent(reason)}`);
  showProgress(data.progress);
  show(data.faces[0] || null);
}

async function act(path, body, message) {
  if (busy) return;
  setBusy(true);
  try {
    const r = await api(path, body);
    setStatus(message(r));
    await next();
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    setBusy(false);
  }
}

function label(name) {
  if (!current) return;
  labelled += 1;
  document.body.dataset.labelled = labelled;
  act("/api/label", {id: current.id, label: name, note: $("note").value}, () => `labelled ${name}`);
}

function accept() {
  if (current) act("/api/label", {id: current.id, accept: true, note: $("note").value}, (r) => `accepted ${r.label}`);
}

function skip() {
  if (current) act("/api/skip", {id: current.id}, () => "skipped");
}

async function undo() {
  if (busy) return;
  setBusy(true);
  try {
    const r = await api("/api/undo", {});
    setStatus(r.face ? "undone" : "nothing to undo");
    if (r.face) {
      const p = await api("/api/config");
      showProgress(p.progress);
      show(r.face);
    }
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    setBusy(false);
  }
}

document.addEventListener("keydown", (ev) => {
  if (ev.target === $("note")) {
    if (ev.key === "Escape") $("note").blur();
    if (ev.key === "Enter") { $("note").blur(); ev.preventDefault(); }
    return;
  }
  if (ev.target.tagName === "SELECT" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key.toLowerCase();
  const cls = classes.find((c) => c.key === k);
  if (cls) label(cls.label);
  else if (k === "enter" || k === "a") accept();
  else if (k === " " || k === "s") skip();
  else if (k === "backspace" || k === "z" || k === "u") undo();
  else if (k === "n") $("note").focus();
  else return;
  ev.preventDefault();
});

$("reason").addEventListener("change", async () => {
  $("reason").blur();
  if (busy) return;
  setBusy(true);
  try { await next(); } finally { setBusy(false); }
});
$("export").addEventListener("click", async () => {
  try {
    const r = await api("/api/export", {});
    setStatus(`exported ${r.written} new, ${r.already} already there`);
  } catch (e) {
    setStatus(e.message, true);
  }
});

(async () => {
  const cfg = await api("/api/config");
  classes = cfg.classes;
  $("classes").replaceChildren(...classes.map((c) => {
    const li = document.createElement("li");
    li.dataset.label = c.label;
    li.innerHTML = `<kbd></kbd> `;
    li.firstChild.textContent = c.key || "·";
    li.append(c.label.replace(/_/g, " "));
    li.addEventListener("click", () => label(c.label));
    return li;
  }));
  for (const [reason, n] of Object.entries(cfg.progress.by_reason)) {
    const o = document.createElement("option");
    o.value = reason; o.textContent = `${reason} (${n})`;
    $("reason").append(o);
  }
  $("export").disabled = !cfg.export;
  await next();
  document.body.dataset.ready = "1";
})();
