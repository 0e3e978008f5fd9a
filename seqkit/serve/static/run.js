// One run's page: live keyword spotting from the microphone, a WAV upload, or music generation.
// Talks to the server of seqkit/serve/app.py; the wire format is in seqkit/serve/streams.py.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const runId = params.get("id");
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
                "#4b5563", "#65a30d", "#7c3aed", "#0d9488"];
const RATE = 16000;          // what the server expects
const FRAME_SAMPLES = 640;   // 40 ms per message
const PLOT_SECONDS = 6;

// What tests (and curious users, in the console) can read.
const seqkit = window.seqkit = { results: 0, detections: [], errors: [], e2e: [], server: [] };

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
  if (text) seqkit.errors.push(text);
}

async function getJSON(url, options) {
  const r = await fetch(url, options);
  let doc;
  try { doc = await r.json(); } catch (e) { throw new Error(`${r.status} ${r.statusText}`); }
  if (!r.ok) throw new Error(doc.error || `${r.status} ${r.statusText}`);
  return doc;
}

function quantile(values, q) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

// -- page set-up --------------------------------------------------------------------------

let info = null;

async function main() {
  if (!runId) { location.replace("/"); return; }
  $("title").textContent = runId;
  try {
    info = await getJSON(`/api/run?id=${encodeURIComponent(runId)}`);
  } catch (e) {
    $("name").textContent = runId;
    showError($("error"), e.message);
    return;
  }
  $("name").textContent = info.name || runId;
  const m = info.metric ? `; ${info.metric.split} ${info.metric.name} ${info.metric.value.toFixed(4)}` : "";
  $("summary").textContent = `${info.kind === "export" ? "export" : "run"} ${runId}: task ${info.task}` +
    `${info.date ? ", " + info.date.replace("T", " ") : ""}${m}`;
  document.title = `seqkit serve: ${info.name || runId}`;
  if (info.servable_as === "kws") setUpKws();
  else setUpMusic();
}

// -- keyword spotting: live ---------------------------------------------------------------

const live = { ws: null, ctx: null, node: null, media: null, nextId: 0, sent: new Map(),
               keywords: [], labels: [], smooth: 1, series: [], marks: [], frame: 0,
               frameSeconds: 0.02, userStopped: false };

function settings() {
  return { threshold: Number($("threshold").value), smooth_ms: Number($("smooth").value),
           refractory_ms: Number($("refractory").value) };
}

function setUpKws() {
  $("kws").hidden = false;
  $("upload-limits").textContent = `at most ${(info.limits.upload_bytes / 2 ** 20).toFixed(0)} MiB, ${info.limits.upload_seconds} s`;
  if (!info.streaming) {
    $("listen").disabled = true;
    showError($("stream-error"), `This model cannot stream: ${info.stream_problem}`);
  }
  $("threshold").addEventListener("input", () => {
    $("threshold-v").textContent = Number($("threshold").value).toFixed(2);
  });
  for (const id of ["threshold", "smooth", "refractory"]) {
    $(id).addEventListener("change", () => {
      if (live.ws && live.ws.readyState === WebSocket.OPEN) {
        live.ws.send(JSON.stringify({ type: "settings", ...settings() }));
      }
    });
  }
  $("listen").addEventListener("click", () => (live.ws ? stopListening() : startListening()));
  $("analyse").addEventListener("click", analyse);
  drawLive();
}

async function startListening() {
  showError($("stream-error"), "");
  $("listen").disabled = true;
  live.userStopped = false;
  try {
    live.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    // 16 kHz in the AudioContext: the browser resamples the microphone. Where it cannot
    // (?rate=native, or a browser that refuses), the worklet resamples.
    let source;
    if (params.get("rate") !== "native") {
      try {
        live.ctx = new AudioContext({ sampleRate: RATE });
        source = live.ctx.createMediaStreamSource(live.media);
      } catch (e) {
        if (live.ctx) live.ctx.close();
        live.ctx = null;
      }
    }
    if (!live.ctx) {
      live.ctx = new AudioContext();
      source = live.ctx.createMediaStreamSource(live.media);
    }
    await live.ctx.audioWorklet.addModule("/static/worklet.js");
    live.node = new AudioWorkletNode(live.ctx, "seqkit-frames",
      { processorOptions: { targetRate: RATE, frameSamples: FRAME_SAMPLES } });
    const mute = live.ctx.createGain();
    mute.gain.value = 0;
    source.connect(live.node).connect(mute).connect(live.ctx.destination);
    await live.ctx.resume();
  } catch (e) {
    showError($("stream-error"), `Cannot open the microphone: ${e.message}`);
    teardownAudio();
    $("listen").disabled = false;
    return;
  }
  const q = new URLSearchParams({ id: runId, ...settings() });
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/stream?${q}`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  live.sent.clear();
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (!live.userStopped && ev.code !== 1000 && !$("stream-error").textContent) {
      showError($("stream-error"), `The stream closed (code ${ev.code}${ev.reason ? ": " + ev.reason : ""}).`);
    }
    stopListening(true);
  };
  ws.onopen = () => {
    live.node.port.onmessage = (e) => sendFrame(e.data);
    $("listen").textContent = "Stop";
    $("listen").className = "stop";
    $("listen").disabled = false;
  };
}

function sendFrame(samples) {
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const id = live.nextId++ >>> 0;
  const buf = new ArrayBuffer(4 + 4 * samples.length);
  new DataView(buf).setUint32(0, id, true);
  new Float32Array(buf, 4).set(samples);
  live.sent.set(id, performance.now());
  ws.send(buf);
}

function onMessage(msg) {
  if (msg.type === "error") { showError($("stream-error"), msg.message); return; }
  if (msg.type === "ready") {
    live.labels = msg.labels;
    live.keywords = msg.keywords.map((k) => msg.labels.indexOf(k));
    live.frameSeconds = msg.frame_seconds;
    live.series = live.keywords.map(() => []);
    live.ring = [];
    live.marks = [];
    live.smooth = msg.smooth_frames;
    seqkit.ready = msg;
    legend();
    return;
  }
  if (msg.type === "settings") { live.smooth = msg.smooth_frames; seqkit.settings = msg; return; }
  if (msg.type !== "result") return;
  const t0 = live.sent.get(msg.id);
  if (t0 !== undefined) {
    live.sent.delete(msg.id);
    seqkit.e2e.push(performance.now() - t0);
    seqkit.server.push(msg.server_ms);
    if (seqkit.e2e.length > 500) { seqkit.e2e.shift(); seqkit.server.shift(); }
  }
  seqkit.results++;
  const maxPoints = Math.ceil(PLOT_SECONDS / live.frameSeconds);
  for (const p of msg.posteriors) {
    // The moving average the detector compares with the threshold (its smooth_frames).
    live.ring.push(p);
    if (live.ring.length > live.smooth) live.ring.shift();
    live.keywords.forEach((k, i) => {
      let s = 0;
      for (const row of live.ring) s += row[k];
      live.series[i].push(s / live.ring.length);
      if (live.series[i].length > maxPoints) live.series[i].shift();
    });
    live.frame++;
  }
  for (const d of msg.detections) {
    seqkit.detections.push(d);
    live.marks.push({ frame: d.frame, label: d.label });
    $("detected").innerHTML = "";
    $("detected").append(document.createTextNode(d.label));
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = `at ${d.time_s.toFixed(2)} s, score ${d.score.toFixed(2)}`;
    $("detected").append(when);
    const li = document.createElement("li");
    li.textContent = `${d.label}  ${d.time_s.toFixed(3)} s  (${d.score.toFixed(3)})`;
    li.dataset.label = d.label;
    $("log").prepend(li);
  }
  if (seqkit.results % 10 === 0) {
    const e = seqkit.e2e, s = seqkit.server;
    $("latency").textContent =
      `latency per ${FRAME_SAMPLES / RATE * 1000} ms frame (last ${e.length}): server ` +
      `median ${quantile(s, 0.5).toFixed(2)} ms, p95 ${quantile(s, 0.95).toFixed(2)} ms; ` +
      `end to end median ${quantile(e, 0.5).toFixed(1)} ms, p95 ${quantile(e, 0.95).toFixed(1)} ms`;
  }
}

function legend() {
  const el = $("legend");
  el.innerHTML = "";
  live.keywords.forEach((k, i) => {
    const span = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = COLORS[i % COLORS.length];
    span.append(sw, document.createTextNode(live.labels[k]));
    el.append(span);
  });
}

function drawLive() {
  const c = $("plot"), g = c.getContext("2d");
  const w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  const maxPoints = Math.ceil(PLOT_SECONDS / live.frameSeconds);
  const x = (i) => (i / (maxPoints - 1)) * w;
  const y = (v) => h - 8 - v * (h - 16);
  g.strokeStyle = "#e5e7eb";
  g.lineWidth = 1;
  for (const v of [0, 0.5, 1]) { g.beginPath(); g.moveTo(0, y(v)); g.lineTo(w, y(v)); g.stroke(); }
  g.setLineDash([6, 4]);
  g.strokeStyle = "#6b7280";
  g.beginPath(); g.moveTo(0, y(settings().threshold)); g.lineTo(w, y(settings().threshold)); g.stroke();
  g.setLineDash([]);
  const first = live.frame - (live.series[0] ? live.series[0].length : 0);
  for (const m of live.marks) {
    const i = m.frame - first;
    if (i < 0) continue;
    g.fillStyle = "rgba(22,163,74,.15)";
    g.fillRect(x(i) - 2, 0, 4, h);
  }
  live.series.forEach((s, k) => {
    g.strokeStyle = COLORS[k % COLORS.length];
    g.lineWidth = 2;
    g.beginPath();
    s.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.stroke();
  });
  requestAnimationFrame(drawLive);
}

function teardownAudio() {
  if (live.node) { live.node.port.postMessage("stop"); live.node.disconnect(); live.node = null; }
  if (live.media) { live.media.getTracks().forEach((t) => t.stop()); live.media = null; }
  if (live.ctx) { live.ctx.close(); live.ctx = null; }
}

function stopListening(closed) {
  live.userStopped = !closed;
  teardownAudio();
  if (live.ws && !closed) live.ws.close(1000);
  live.ws = null;
  $("listen").textContent = "Listen";
  $("listen").className = "";
  $("listen").disabled = !info.streaming;
}

// -- keyword spotting: an uploaded WAV ------------------------------------------------------

async function analyse() {
  const file = $("wav").files[0];
  showError($("upload-error"), "");
  if (!file) { showError($("upload-error"), "Choose a WAV file first."); return; }
  $("analyse").disabled = true;
  try {
    const q = new URLSearchParams({ id: runId, name: file.name, ...settings() });
    const doc = await getJSON(`/api/analyse?${q}`, { method: "POST", body: file,
                                                     headers: { "Content-Type": "audio/wav" } });
    seqkit.analysis = doc;
    showAnalysis(doc);
  } catch (e) {
    showError($("upload-error"), e.message);
  } finally {
    $("analyse").disabled = false;
  }
}

function showAnalysis(doc) {
  $("analysis").hidden = false;
  const body = document.querySelector("#top tbody");
  body.innerHTML = "";
  for (const t of doc.top) {
    const tr = document.createElement("tr");
    for (const v of [t.label, t.probability.toFixed(4)]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    body.append(tr);
  }
  const list = $("track-detections");
  list.innerHTML = "";
  for (const d of doc.detections || []) {
    const li = document.createElement("li");
    li.textContent = `${d.label}  ${d.time_s.toFixed(3)} s  (${d.score.toFixed(3)})`;
    list.append(li);
  }
  if (!doc.detections || !doc.detections.length) {
    const li = document.createElement("li");
    li.textContent = doc.stream_problem ? `not streamed: ${doc.stream_problem}` : "no detection";
    list.append(li);
  }
  drawTrack(doc);
  const gates = $("gates");
  gates.innerHTML = "";
  $("gate-note").textContent = doc.gates.length ? "rows: units; columns: frames; 0 dark, 1 bright."
    : `No gates: ${doc.gate_problem}.`;
  for (const layer of doc.gates) {
    for (const key of ["r", "z"]) {
      const fig = document.createElement("figure");
      const cap = document.createElement("figcaption");
      cap.textContent = `${layer.layer}: ${key === "r" ? "reset gate r" : "update gate z"}`;
      fig.append(cap, heatmap(layer[key]));
      gates.append(fig);
    }
  }
}

function drawTrack(doc) {
  const c = $("track"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const post = doc.posteriors || [];
  if (!post.length) return;
  const fillers = new Set(doc.labels.filter((l) => /^_.*_$/.test(l)));
  const w = c.width, h = c.height;
  const x = (i) => (i / Math.max(1, post.length - 1)) * w, y = (v) => h - 6 - v * (h - 12);
  let k = 0;
  doc.labels.forEach((label, j) => {
    if (fillers.has(label)) return;
    g.strokeStyle = COLORS[k++ % COLORS.length];
    g.lineWidth = 1.5;
    g.beginPath();
    post.forEach((p, i) => (i ? g.lineTo(x(i), y(p[j])) : g.moveTo(x(i), y(p[j]))));
    g.stroke();
    g.fillStyle = g.strokeStyle;
    g.fillText(label, 6 + 60 * (k - 1), 12);
  });
  for (const d of doc.detections || []) {
    const i = d.time_s / doc.frame_seconds;
    g.fillStyle = "rgba(22,163,74,.25)";
    g.fillRect(x(i) - 2, 0, 4, h);
  }
}

function heatmap(rows) {
  // rows: (time, units) in [0, 1] -> a canvas, units bottom to top, a dark-to-bright ramp.
  const t = rows.length, u = t ? rows[0].length : 0;
  const c = document.createElement("canvas");
  c.width = Math.max(1, t);
  c.height = Math.max(1, u);
  c.style.height = "140px";
  c.style.imageRendering = "pixelated";
  const g = c.getContext("2d"), img = g.createImageData(c.width, c.height);
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < u; j++) {
      const v = Math.max(0, Math.min(1, rows[i][j]));
      const o = 4 * ((u - 1 - j) * c.width + i);
      img.data[o] = Math.round(68 + v * (253 - 68));
      img.data[o + 1] = Math.round(1 + v * (231 - 1));
      img.data[o + 2] = Math.round(84 + v * (37 - 84));
      img.data[o + 3] = 255;
    }
  }
  g.putImageData(img, 0, 0);
  return c;
}

// -- music -----------------------------------------------------------------------------------

function setUpMusic() {
  $("music").hidden = false;
  $("generate").addEventListener("click", generate);
}

async function generate() {
  showError($("music-error"), "");
  $("generate").disabled = true;
  $("generate").textContent = "Generating...";
  try {
    const q = new URLSearchParams({ id: runId, steps: $("steps").value,
                                    temperature: $("temperature").value, seed: $("seed").value });
    const primer = $("primer").files[0];
    const doc = await getJSON(`/api/generate?${q}`, { method: "POST", body: primer || new Blob([]),
                                                      headers: { "Content-Type": "audio/midi" } });
    seqkit.sample = doc;
    $("sample").hidden = false;
    $("player").src = doc.wav;
    $("roll").src = doc.png;
    $("dl-wav").href = doc.wav;
    $("dl-mid").href = doc.mid;
    $("sample-note").textContent = `(seed ${doc.seed}, temperature ${doc.temperature}, ` +
      `${doc.steps} steps${doc.primer_steps ? ` after a ${doc.primer_steps}-step primer` : ""}; ${doc.renderer})`;
  } catch (e) {
    showError($("music-error"), e.message);
  } finally {
    $("generate").disabled = false;
    $("generate").textContent = "Generate";
  }
}

main();
