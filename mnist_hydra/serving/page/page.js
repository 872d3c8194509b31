// The drawing page: sends the canvas (or a chosen file) to POST /predict and shows the answer.
// Served with collect_dir, it offers the right label under each answer: POST /collect keeps the
// image under that label, a dataset of this person's handwriting (serving/collect.py).
"use strict";

const canvas = document.getElementById("canvas");
const pen = canvas.getContext("2d");
const seen = document.getElementById("seen");
const message = document.getElementById("message");
let drawing = false;
let last = null;
let inFlight = false; // one request at a time; a change meanwhile sends again when it returns
let changed = false;
let drawingNumber = 0; // a Clear starts a new drawing: an answer about an older one is not shown
let collect = null; // {folder, max_per_label} when the server keeps corrections
let lastSent = null; // the image of the answer shown: what a correction keeps

function clearCanvas() {
  drawingNumber += 1;
  changed = false;
  pen.fillStyle = "white";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  document.getElementById("predicted").textContent = "–";
  document.getElementById("bars").innerHTML = "";
  message.textContent = "";
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  document.getElementById("correct").hidden = true;
  lastSent = null;
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return { x: (event.clientX - box.left) * canvas.width / box.width,
           y: (event.clientY - box.top) * canvas.height / box.height };
}

function strokeTo(p) {
  pen.lineWidth = canvas.width / 14; // about MNIST's stroke, once the digit is fitted into 20x20
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.strokeStyle = "black";
  pen.beginPath();
  pen.moveTo(last.x, last.y);
  pen.lineTo(p.x, p.y);
  pen.stroke();
  last = p;
}

canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  last = point(event);
  strokeTo(point(event)); // a dot for a tap
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of (events.length ? events : [event])) strokeTo(point(each));
  predictCanvas();
});
for (const end of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(end, () => {
    if (!drawing) return;
    drawing = false;
    predictCanvas();
  });
}

function predictCanvas() {
  if (inFlight) { changed = true; return; }
  inFlight = true;
  changed = false;
  document.body.dataset.busy = "true"; // for tests: "false" once the shown answer is the canvas'
  canvas.toBlob((blob) => send(blob, "image/png").finally(() => {
    inFlight = false;
    if (changed) predictCanvas();
    else document.body.dataset.busy = "false";
  }), "image/png");
}

async function send(body, type) {
  const about = drawingNumber;
  try {
    const options = { method: "POST", body };
    if (type) options.headers = { "Content-Type": type };
    const response = await fetch("/predict", options);
    const answer = await response.json();
    if (about !== drawingNumber) return; // cleared while it was on its way
    if (!response.ok) { showError(answer.error || response.statusText); return; }
    lastSent = { body, type };
    show(answer);
  } catch (error) {
    if (about === drawingNumber) showError(`the server did not answer (${error})`);
  }
}

function showError(text) {
  message.textContent = text;
  document.getElementById("predicted").textContent = "?";
}

function show(answer) {
  message.textContent = "";
  const predicted = document.getElementById("predicted");
  predicted.textContent = answer.predicted;
  predicted.dataset.index = answer.index;
  const bars = document.getElementById("bars");
  bars.innerHTML = "";
  answer.class_names.forEach((name, i) => {
    const p = answer.probabilities[i];
    const row = document.createElement("li");
    if (i === answer.index) row.className = "best";
    row.innerHTML = '<span class="name"></span><span><div class="bar"></div></span><span class="value"></span>';
    row.querySelector(".name").textContent = name;
    row.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = `${(100 * p).toFixed(1)}%`;
    bars.appendChild(row);
  });
  drawSeen(answer.image);
  offerLabels(answer);
}

function offerLabels(answer) {
  if (!collect) return;
  const labels = document.getElementById("labels");
  labels.innerHTML = "";
  document.getElementById("correct-prompt").textContent = `Not ${answer.predicted}? It is:`;
  answer.class_names.forEach((name, i) => {
    if (i === answer.index) return;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.dataset.label = name;
    button.addEventListener("click", () => correct(name));
    labels.appendChild(button);
  });
  document.getElementById("collected").textContent = "";
  document.getElementById("correct").hidden = false;
}

async function correct(label) {
  const status = document.getElementById("collected");
  if (!lastSent) return;
  const options = { method: "POST", body: lastSent.body };
  if (lastSent.type) options.headers = { "Content-Type": lastSent.type };
  try {
    const response = await fetch(`/collect?label=${encodeURIComponent(label)}`, options);
    const saved = await response.json();
    if (!response.ok) { status.textContent = saved.error || response.statusText; return; }
    status.textContent = `Kept as ${label}: ${saved.view} (${saved.count} of ${label})`;
    document.body.dataset.collected = String(Number(document.body.dataset.collected || 0) + 1); // for tests
  } catch (error) {
    status.textContent = `the server did not answer (${error})`;
  }
}

function drawSeen(image) {
  // image: rows of gray values in [0, 1], or of [r, g, b] for a colour dataset
  seen.height = image.length;
  seen.width = image[0].length;
  const pixels = seen.getContext("2d").createImageData(seen.width, seen.height);
  image.forEach((row, y) => row.forEach((value, x) => {
    const rgb = Array.isArray(value) ? value : [value, value, value];
    const at = 4 * (y * seen.width + x);
    rgb.forEach((c, k) => { pixels.data[at + k] = Math.round(255 * c); });
    pixels.data[at + 3] = 255;
  }));
  seen.getContext("2d").putImageData(pixels, 0, 0);
}

function sendFile(file) {
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  send(form, null);
}

document.getElementById("clear").addEventListener("click", clearCanvas);
document.getElementById("file").addEventListener("change", (event) => sendFile(event.target.files[0]));
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  sendFile(event.dataTransfer.files[0]);
});

fetch("/model").then((response) => response.json()).then((run) => {
  const percent = (accuracy) => `${(100 * accuracy).toFixed(2)}%`;
  const ensemble = run.members.length > 1;
  const recorded = run.members.map((member) => member.test_accuracy).filter((a) => a != null);
  const accuracy = ensemble
    ? `members' test accuracy ${recorded.map(percent).join(", ") || "not recorded"}`
    : run.test_accuracy == null ? "test accuracy not recorded" : `test accuracy ${percent(run.test_accuracy)}`;
  const name = run.run.split("/").slice(-2).join("/");
  const what = ensemble ? `Ensemble of ${run.members.length} runs, ${name}` : `Run ${name}`;
  document.getElementById("run").textContent =
    `${what} · dataset ${run.dataset} (${run.class_names.length} classes) · ${accuracy}`;
  collect = run.collect;
  if (collect) {
    const where = document.getElementById("collecting");
    where.textContent = `A drawing you correct is kept in ${collect.folder}/<label>/ (collect_dir), to fine-tune on.`;
    where.hidden = false;
  }
});
clearCanvas();
