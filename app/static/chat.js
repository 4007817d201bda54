// The reference client of POST /chat: fetch, then read the event stream as it arrives.
// Plain browser JavaScript, no library and no build step. Events (see docs/api.md):
//   start {id, model} · [compaction {compaction}] · thinking {text} · delta {text} · [fallback {to_model}]
//   · end {stop_reason, usage, context, [compaction]} · data: [DONE]
//   error {error: {type, message}} ends a stream that failed after it started (no [DONE]).
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("composer");
const input = document.getElementById("message");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const status = document.getElementById("status");
const alertBox = document.getElementById("error");
const meter = document.getElementById("meter");

// The service keeps nothing between requests: the page holds the conversation and sends all of it.
const history = [];
let controller = null; // the AbortController of the request in flight
// Anthropic's compaction block of the answer in flight, if it summarised the older turns: it goes
// back with that answer in the history, and the next request starts from it.
let compaction = null;
let compactionNote = null; // says so in the conversation, above the answer

// Enter sends, Shift+Enter is a new line (and Enter while an input method composes is left alone).
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// Aborting the fetch closes the connection; the service then closes its call to Anthropic.
stopButton.addEventListener("click", () => controller?.abort());

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || controller) return;
  input.value = "";
  showError("");
  history.push({ role: "user", content: text });
  const turn = [bubble("user", text), bubble("assistant", "")];
  const answer = turn[1];
  setBusy(true);
  compaction = compactionNote = null;
  let failure = null;
  try {
    await streamAnswer(answer);
  } catch (error) {
    failure = error;
  }
  const stopped = failure?.name === "AbortError";
  if (answer.textContent.trim() && (!failure || stopped)) {
    // Answered, or stopped: what was shown stays in the conversation, as the user saw it.
    history.push({ role: "assistant", content: answer.textContent, ...(compaction && { compaction }) });
  } else {
    // Failed, or no text at all: the turn leaves the history and the question comes back to edit.
    history.pop();
    turn.forEach((node) => node.classList.add("failed"));
    input.value = text;
    if (failure && !stopped) showError(failure.message);
  }
  setBusy(false);
});

async function streamAnswer(answer) {
  controller = new AbortController();
  let response;
  try {
    response = await fetch("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      // "summarized": the model's thinking arrives as text (folded above the answer); "omitted"
      // would only say that it thinks.
      body: JSON.stringify({ messages: history, stream: true, thinking: "summarized" }),
      signal: controller.signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Error("The service could not be reached.");
  }
  if (!response.ok) throw new Error(await errorMessage(response));

  // SSE by hand: events are separated by a blank line; lines starting with ":" are pings.
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The connection closed before the answer was complete.");
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      handle(JSON.parse(data), answer);
    }
  }
}

function handle(event, answer) {
  switch (event.type) {
    case "thinking": // the model is thinking; `text` is its summary when one was asked for
      status.hidden = false;
      if (event.text) thoughts(answer).append(event.text);
      log.scrollTop = log.scrollHeight;
      break;
    case "delta":
      status.hidden = true;
      if (compactionNote) compactionNote.textContent = "Earlier messages summarised.";
      answer.append(event.text); // a text node: model output is never parsed as HTML
      log.scrollTop = log.scrollHeight;
      break;
    case "compaction": // Anthropic is summarising the older turns before it answers
      compaction = event.compaction;
      compactionNote = Object.assign(document.createElement("p"), {
        className: "note",
        textContent: "Summarising earlier messages…",
      });
      answer.before(compactionNote);
      break;
    case "fallback": // the model declined and another took over: its text replaces what was shown
      answer.textContent = "";
      break;
    case "end": // how full the conversation is: what the next turn starts from
      if (event.context) showMeter(event.context);
      break;
    case "error":
      throw new Error(event.error.message);
    // start carries the message id and the model; this page shows neither.
  }
}

// "1,234 / 200,000 tokens"; the window is null until the service has looked the model up.
function showMeter({ used, window }) {
  const figure = (count) => count.toLocaleString("en-US");
  meter.textContent = window ? `${figure(used)} / ${figure(window)} tokens` : `${figure(used)} tokens`;
  meter.hidden = false;
}

// The service answers errors with {detail: {type, message}}, or FastAPI's list for a 422.
async function errorMessage(response) {
  try {
    const { detail } = await response.json();
    if (Array.isArray(detail)) return detail.map((problem) => problem.msg).join("; ");
    if (detail?.message) return detail.message;
  } catch {
    // not JSON: fall through
  }
  return `The service answered ${response.status}.`;
}

function bubble(role, text) {
  const node = document.createElement("div");
  node.className = `message ${role}`;
  node.textContent = text;
  log.append(node);
  log.scrollTop = log.scrollHeight;
  return node;
}

// A summary of the model's thinking, folded away above its answer (not part of the history).
function thoughts(answer) {
  if (!answer.previousElementSibling?.matches("details")) {
    const details = document.createElement("details");
    details.className = "thoughts";
    details.append(Object.assign(document.createElement("summary"), { textContent: "Thoughts" }));
    answer.before(details);
  }
  return answer.previousElementSibling;
}

function setBusy(busy) {
  if (!busy) controller = null;
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
  status.hidden = true;
  if (!busy) input.focus();
}

function showError(message) {
  alertBox.textContent = message;
  alertBox.hidden = !message;
}
