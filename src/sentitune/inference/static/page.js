// The page at GET /: classify a text with POST /predict and colour its words with POST /explain.
// Text from the user or the server is only ever set as textContent, never parsed as HTML.
"use strict";

const GREEN = [22, 163, 74], RED = [220, 38, 38], WHITE = [255, 255, 255];  // as in sentitune/explain.py
let labels = [];

const $ = (id) => document.getElementById(id);

// Python's round(): halves go to the even neighbour, so colours match explain.background() exactly.
function roundHalfEven(x) {
  const floor = Math.floor(x), rest = x - floor;
  if (rest !== 0.5) return rest < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

// explain.background(): white blended towards green (score > 0) or red (< 0) by |score|.
function background(score) {
  const colour = score > 0 ? GREEN : RED, weight = Math.min(Math.abs(score), 1);
  return WHITE.map((w, i) => roundHalfEven(w + (colour[i] - w) * weight));
}

function signed(value, digits) {
  return (value < 0 || Object.is(value, -0) ? "-" : "+") + Math.abs(value).toFixed(digits);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The server's JSON answer, or an Error whose message says what went wrong in words.
async function call(path, body) {
  let response;
  try {
    response = await fetch(path, body === undefined ? {} : {
      method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  } catch (err) {
    throw new Error("The server could not be reached: " + err.message);
  }
  let answer = null;
  try { answer = await response.json(); } catch (err) { answer = null; }
  if (!response.ok) throw new Error(problem(response.status, answer));
  return answer;
}

function problem(status, answer) {
  let detail = answer && answer.detail;
  if (Array.isArray(detail)) detail = detail.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ");
  const what = {408: "The request took too long to arrive", 413: "The text is too long for the server",
                422: "The server could not accept this text", 503: "The server is busy; try again shortly"}[status]
    || "The server answered " + status;
  return what + " (" + status + ")" + (detail ? ": " + detail : ".");
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function showPrediction(prediction) {
  $("label").textContent = prediction.label;
  $("confidence").textContent = "(" + prediction.score.toFixed(3) + ")";
  const names = labels.length ? labels : Object.keys(prediction.scores);
  $("bars").replaceChildren(...names.map((name) => {
    const p = prediction.scores[name] || 0;
    const row = element("div", "bar-row" + (name === prediction.label ? " best" : ""));
    row.dataset.label = name;
    const track = element("div", "bar-track"), bar = element("div", "bar");
    bar.style.width = (100 * p).toFixed(1) + "%";
    track.append(bar);
    row.append(element("span", "bar-name", name), track, element("span", "bar-value", (100 * p).toFixed(1) + "%"));
    return row;
  }));
  $("result").hidden = false;
}

function showExplanation(found) {
  const p = found.scores[found.label];
  $("summary").textContent = "predicted " + found.label + " (" + p.toFixed(3) + "); explaining " + found.target +
    " (green: for, red: against); convergence delta " + signed(found.delta, 4);
  const pieces = [];
  found.words.forEach((w, i) => {
    if (i) pieces.push(document.createTextNode(" "));
    const span = element("span", "", w.word);
    const [r, g, b] = background(w.score);
    span.style.backgroundColor = "rgb(" + r + ", " + g + ", " + b + ")";
    span.title = signed(w.score, 3);
    span.dataset.score = String(w.score);
    pieces.push(span);
  });
  $("words").replaceChildren(...pieces);
  $("explanation").hidden = false;
}

async function classify(event) {
  event.preventDefault();
  const text = $("text").value;
  showError("");
  if (!text.trim()) return showError("Type a text first.");
  document.body.dataset.state = "busy";
  $("classify").disabled = true;
  $("result").hidden = $("explanation").hidden = true;
  const jobs = [call("predict", {texts: [text]}).then((answer) => showPrediction(answer[0]))];
  if ($("explain").checked) {
    $("summary").textContent = "explaining…";
    $("words").replaceChildren();
    $("explanation").hidden = false;
    jobs.push(call("explain", {text}).then(showExplanation, (err) => {
      $("explanation").hidden = true;
      throw err;
    }));
  }
  const errors = (await Promise.allSettled(jobs)).filter((r) => r.status === "rejected");
  showError(errors.map((r) => r.reason.message).filter((m, i, all) => all.indexOf(m) === i).join(" "));
  $("classify").disabled = false;
  document.body.dataset.state = "done";  // for tests: both answers are in
}

async function start() {
  $("form").addEventListener("submit", classify);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("form").requestSubmit();
  });
  try {
    const health = await call("health");
    labels = health.labels;
    $("model").textContent = "Model " + health.model + " (" + health.backend + "); classes: " + labels.join(", ");
  } catch (err) {
    showError(err.message);
  }
}

document.addEventListener("DOMContentLoaded", start);
