// The runs list: GET /api/runs, one row per run folder or export, each linking to its page.
"use strict";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function metricText(m) {
  if (!m) return "";
  const v = Math.abs(m.value) >= 10 ? m.value.toFixed(2) : m.value.toFixed(4);
  return `${m.split} ${m.name} ${v}`;
}

async function main() {
  const err = document.getElementById("error");
  let doc;
  try {
    const r = await fetch("/api/runs");
    doc = await r.json();
    if (!r.ok) throw new Error(doc.error || r.statusText);
  } catch (e) {
    err.textContent = `Cannot list the runs: ${e.message}`;
    err.hidden = false;
    return;
  }
  document.getElementById("root").textContent = doc.root;
  const body = document.querySelector("#runs tbody");
  if (doc.runs.length === 1 && !doc.runs[0].problem && !new URLSearchParams(location.search).has("list")) {
    location.replace(`/run?id=${encodeURIComponent(doc.runs[0].id)}`);
    return;
  }
  document.getElementById("empty").hidden = doc.runs.length > 0;
  for (const run of doc.runs) {
    const tr = document.createElement("tr");
    const td = cell(tr, "");
    const a = document.createElement("a");
    a.href = `/run?id=${encodeURIComponent(run.id)}`;
    a.textContent = run.id === "." ? "(this run)" : run.id;
    td.appendChild(a);
    if (run.kind === "export") td.appendChild(document.createTextNode(` (${run.format}${run.streaming ? ", streaming" : ""})`));
    cell(tr, run.name);
    cell(tr, run.task);
    cell(tr, (run.date || "").replace("T", " "));
    cell(tr, metricText(run.metric), "num");
    cell(tr, run.problem ? `damaged: ${run.problem}` : run.status, run.problem ? "bad" : "");
    body.appendChild(tr);
  }
}

main();
