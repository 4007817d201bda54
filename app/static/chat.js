// The reference client of POST /chat: fetch, then read the event stream as it arrives.
// Plain browser JavaScript, no library and no build step. Events (see docs/api.md):
//   start {id, model, [stream_id]} · [compaction {compaction}] · thinking {text} · delta {text}
//   · [fallback {to_model}] · end {stop_reason, usage, context, [compaction]} · data: [DONE]
//   error {error: {type, message}} ends a stream that failed after it started (no [DONE]).
// With resumption on (CHAT_REDIS_URL), every event has an SSE `id:` and `start` a `stream_id`: the
// page then picks the answer up again after a reload or a dropped connection
// (GET /chat/streams/{stream_id} with Last-Event-ID), and Stop asks the service to stop it
// (POST /chat/streams/{stream_id}/stop). Without a stream_id, everything is as it always was.
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("composer");
const input = document.getElementById("message");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const status = document.getElementById("status");
const alertBox = document.getElementById("error");
const meter = document.getElementById("meter");

// The service keeps no conversation: the page holds it and sends all of it each turn. This tab's
// sessionStorage keeps it across a reload, in two entries: the conversation, written once a turn,
// and the answer in flight, written after each event (it is small, and a reload can come at any time).
const SAVED_CONVERSATION = "chat-service.conversation";
const SAVED_ANSWER = "chat-service.answer";
// Waits before each attempt to pick up an answer whose connection dropped (ms); spent, the answer
// stays as shown. An attempt that brings events starts the count again.
const RESUME_DELAYS = [250, 1000, 3000];

const history = [];
let context = null; // the meter's figures, from the last answer's `end`
// The answer in flight: {question, user, node (its bubble), thinking (its thoughts' text),
// compaction, compactionNote, streamId, lastEventId, abort (its AbortController)}.
let flight = null;
// Once the page is going away (a reload), a request it aborts is not an answer that failed: what
// is saved stays for the page that comes next.
let leaving = false;

class Unresumable extends Error {} // the answer cannot be picked up again: keep what was shown
class Dropped extends Error {} // the connection ended before the answer did

addEventListener("pagehide", () => {
  leaving = true;
});
addEventListener("pageshow", () => {
  leaving = false; // back from the back/forward cache
});

// Enter sends, Shift+Enter is a new line (and Enter while an input method composes is left alone).
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", async () => {
  const current = flight;
  if (!current) return;
  stopButton.disabled = true;
  if (current.streamId) {
    // The service stops the answer wherever it runs; the stream then ends by itself, with
    // stop_reason "stopped". A 404 means nothing is in flight there any more.
    try {
      const response = await fetch(`/chat/streams/${encodeURIComponent(current.streamId)}/stop`, { method: "POST" });
      if (response.status === 204) return;
    } catch {
      // unreachable: abort below
    }
  }
  // Aborting the fetch closes the connection; without resumption the service then closes its call
  // to Anthropic at once.
  current.abort.abort();
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || flight) return;
  input.value = "";
  showError("");
  history.push({ role: "user", content: text });
  flight = newFlight(text, bubble("user", text), bubble("assistant", ""));
  saveConversation();
  saveAnswer();
  follow(ask);
});

restore();

// Reads the answer in flight to its end; with a stream_id, picks it up again where a dropped
// connection left it, a few times, waiting longer each time.
async function follow(request) {
  setBusy(true);
  let failure = null;
  for (let attempt = 0; ; attempt++) {
    const seen = flight.lastEventId;
    try {
      const response = await request();
      status.hidden = true; // ("Reconnecting…"): the events say what comes next
      await readEvents(response);
      break;
    } catch (error) {
      if (leaving) return;
      if (flight.lastEventId !== seen) attempt = 0;
      if (error instanceof Dropped && flight.streamId && attempt < RESUME_DELAYS.length) {
        showStatus("Reconnecting…");
        await new Promise((resolve) => setTimeout(resolve, RESUME_DELAYS[attempt]));
        request = resume;
        continue;
      }
      failure = error instanceof Dropped && flight.streamId ? new Unresumable("The connection was lost; the answer stops here.") : error;
      break;
    }
  }
  settle(failure);
}

function ask() {
  return request("/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    // "summarized": the model's thinking arrives as text (folded above the answer); "omitted"
    // would only say that it thinks.
    body: JSON.stringify({ messages: history, stream: true, thinking: "summarized" }),
  }).then(async (response) => {
    if (!response.ok) throw new Error(await errorMessage(response));
    return response;
  });
}

// Every event after the last one shown, then the rest live: each piece of text exactly once.
function resume() {
  const headers = flight.lastEventId ? { "Last-Event-ID": flight.lastEventId } : {};
  return request(`/chat/streams/${encodeURIComponent(flight.streamId)}`, { headers }).then((response) => {
    if (response.status === 200) return response;
    if (response.status === 204) throw new Unresumable("The answer had already ended.");
    if (response.status === 404) throw new Unresumable("The answer could not be resumed: the service no longer has it.");
    if (response.status === 503) throw new Unresumable("The answer could not be resumed: resuming is unavailable right now.");
    throw new Dropped(`The service answered ${response.status}.`); // a proxy's 502 while a replica restarts: try again
  });
}

async function request(url, options) {
  try {
    return await fetch(url, { ...options, signal: flight.abort.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw flight.streamId ? new Dropped() : new Error("The service could not be reached.");
  }
}

// SSE by hand: events are separated by a blank line; lines starting with ":" are pings.
async function readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error.name === "AbortError") throw error;
      chunk = { done: true };
    }
    if (chunk.done) throw new Dropped("The connection closed before the answer was complete.");
    buffer += chunk.value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const { id, data } = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (!data) continue;
      if (data === "[DONE]") return;
      handle(JSON.parse(data));
      if (id) flight.lastEventId = id;
      saveAnswer();
    }
  }
}

function parseEvent(frame) {
  const event = { id: null, data: "" };
  for (const line of frame.split("\n")) {
    if (line.startsWith("id: ")) event.id = line.slice(4);
    else if (line.startsWith("data: ")) event.data += (event.data && "\n") + line.slice(6);
  }
  return event;
}

function handle(event) {
  const answer = flight.node;
  switch (event.type) {
    case "start": // the message id and the model, which this page does not show; and the key to resume
      flight.streamId = event.stream_id ?? null;
      break;
    case "thinking": // the model is thinking; `text` is its summary when one was asked for
      showStatus("Thinking…");
      if (event.text) {
        thoughts(answer).append(event.text);
        flight.thinking += event.text;
      }
      log.scrollTop = log.scrollHeight;
      break;
    case "delta":
      status.hidden = true;
      if (flight.compactionNote) flight.compactionNote.textContent = "Earlier messages summarised.";
      answer.append(event.text); // a text node: model output is never parsed as HTML
      log.scrollTop = log.scrollHeight;
      break;
    case "compaction": // Anthropic is summarising the older turns before it answers
      flight.compaction = event.compaction;
      flight.compactionNote = note(answer, "Summarising earlier messages…");
      break;
    case "fallback": // the model declined and another took over: its text replaces what was shown
      answer.textContent = "";
      break;
    case "end": // how full the conversation is: what the next turn starts from
      if (event.context) showMeter((context = event.context));
      break;
    case "error": // an answer left without a reader past the grace period ends as far as it got
      if (event.error.type === "answer_abandoned") throw new Unresumable(event.error.message);
      throw new Error(event.error.message);
  }
}

// The end of a turn. Answered, stopped, or no longer resumable: what was shown stays in the
// conversation, as the user saw it. Failed, or no text at all: the turn leaves the conversation
// and the question comes back to edit.
function settle(failure) {
  const { question, user, node, compaction } = flight;
  const stopped = failure?.name === "AbortError";
  if (node.textContent.trim() && (!failure || stopped || failure instanceof Unresumable)) {
    history.push({ role: "assistant", content: node.textContent, ...(compaction && { compaction }) });
  } else {
    history.pop();
    user.classList.add("failed");
    node.classList.add("failed");
    input.value = question;
  }
  if (failure && !stopped) showError(failure.message);
  flight = null;
  saveConversation();
  saveAnswer();
  setBusy(false);
}

function newFlight(question, user, node) {
  return {
    question,
    user,
    node,
    thinking: "",
    compaction: null,
    compactionNote: null,
    streamId: null,
    lastEventId: null,
    abort: new AbortController(),
  };
}

// After a reload: the conversation as it was and, if an answer was in flight, that answer picked up
// where the page left it (or, without resumption, kept as far as it got).
function restore() {
  const saved = load(SAVED_CONVERSATION);
  if (!saved) return;
  history.push(...saved.history);
  for (const message of history) {
    const node = bubble(message.role, message.content);
    if (message.compaction) note(node, "Earlier messages summarised.");
  }
  if ((context = saved.context)) showMeter(context);
  const answer = load(SAVED_ANSWER);
  if (!answer) return;
  const { text, thinking, compaction, streamId, lastEventId } = answer;
  flight = newFlight(history.at(-1).content, log.lastElementChild, bubble("assistant", text));
  Object.assign(flight, { thinking, compaction, streamId, lastEventId });
  // In the order the events put them: the compaction note, then the thoughts, then the answer.
  if (compaction) flight.compactionNote = note(flight.node, text ? "Earlier messages summarised." : "Summarising earlier messages…");
  if (thinking) thoughts(flight.node).append(thinking);
  if (flight.streamId) follow(resume);
  else settle(new Unresumable("The page was reloaded before the answer was complete."));
}

// A failure to save (storage full or off) costs only what a reload would bring back.
function saveConversation() {
  store(SAVED_CONVERSATION, { history, context });
}

function saveAnswer() {
  if (!flight) return store(SAVED_ANSWER, null);
  const { node, thinking, compaction, streamId, lastEventId } = flight;
  store(SAVED_ANSWER, { text: node.textContent, thinking, compaction, streamId, lastEventId });
}

function store(key, value) {
  if (leaving) return;
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // not saved: the page goes on without
  }
}

function load(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key));
  } catch {
    return null;
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

function note(answer, text) {
  const node = Object.assign(document.createElement("p"), { className: "note", textContent: text });
  answer.before(node);
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
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
  status.hidden = true;
  if (!busy) input.focus();
}

function showStatus(text) {
  status.textContent = text;
  status.hidden = false;
}

function showError(message) {
  alertBox.textContent = message;
  alertBox.hidden = !message;
}
