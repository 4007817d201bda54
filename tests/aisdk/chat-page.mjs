// A chat page as a React app's `useChat` makes it: the AI SDK's own `Chat` (AbstractChat over a
// plain state, as @ai-sdk/react's Chat is over React's) with its DefaultChatTransport, talking to
// the service through a TCP proxy of this script's own, so that a test can cut the connection for
// real (the sockets closed mid-stream, as when a phone changes network).
//
//   node chat-page.mjs http://127.0.0.1:8000
//
// Driven by JSON lines on stdin, one command each:
//   {"op": "open", "chatId": "...", "messages": [...], "body": {...}}   a new Chat (a page load);
//       "browserErrors": true reports a cut connection as a browser does (see asInBrowser);
//       "serviceUrl" points the proxy at another replica of the service from now on
//   {"op": "send", "text": "..."}                                       chat.sendMessage
//   {"op": "resume"}                                                    chat.resumeStream()
//   {"op": "resumeIfDisconnected"}    what @ai-sdk/react's useChat calls when the page is visible again
//   {"op": "cut"}                     closes every connection through the proxy
//   {"op": "report"}                  the chat's status, error and messages
// and prints events as JSON lines on stdout: every request and its status, every chunk the
// transport accepted, status changes, the assistant's text as it grows, onFinish and onError,
// and the end of each send or resume ("settled").
import net from "node:net";
import { createInterface } from "node:readline";
import { AbstractChat, DefaultChatTransport } from "ai";

let service = new URL(process.argv[2]);
const emit = (event) => process.stdout.write(`${JSON.stringify({ ...event, at: performance.now() })}\n`);

// The proxy: each connection piped to the service; `cut` destroys both sides of every one open.
const open = new Set();
const proxy = net.createServer((client) => {
  const upstream = net.connect(Number(service.port), service.hostname);
  const pair = { client, upstream };
  open.add(pair);
  client.pipe(upstream);
  upstream.pipe(client);
  const close = () => {
    open.delete(pair);
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close).on("close", close);
  upstream.on("error", close).on("close", close);
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${proxy.address().port}`;

class PageState {
  constructor(messages) {
    this.messages = messages;
    this._status = "ready";
    this.error = undefined;
  }
  get status() {
    return this._status;
  }
  set status(status) {
    this._status = status;
    emit({ event: "status", status });
  }
  pushMessage(message) {
    this.messages = this.messages.concat(message);
    this.changed(message);
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
    this.changed(message);
  }
  snapshot(thing) {
    return structuredClone(thing);
  }
  changed(message) {
    if (message.role !== "assistant") return;
    const text = message.parts.filter((part) => part.type === "text").map((part) => part.text).join("");
    emit({ event: "text", messageId: message.id, length: text.length, messages: this.messages.length });
  }
}

class Chat extends AbstractChat {
  constructor({ messages = [], ...init }) {
    super({ ...init, state: new PageState(messages) });
  }
}

class RecordingTransport extends DefaultChatTransport {
  processResponseStream(stream) {
    return super.processResponseStream(stream).pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          emit({ event: "chunk", chunk });
          controller.enqueue(chunk);
        },
      }),
    );
  }
}

// A body cut midway fails in Node (undici) with TypeError "terminated"; in Chrome with TypeError
// "network error" (Firefox: "NetworkError when attempting to fetch resource.", Safari: "Load
// failed"). ai 7's Chat treats only the browsers' messages as a disconnect it may resume from
// (AbstractChat.makeRequestImpl), so a page opened with "browserErrors" reports Chrome's.
function asInBrowser(body) {
  const reader = body.getReader();
  return new ReadableStream({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error instanceof TypeError ? new TypeError("network error") : error);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

const recordingFetch = (browserErrors) => async (url, init) => {
  const method = init?.method ?? "GET";
  const path = new URL(url).pathname;
  try {
    const response = await fetch(url, init);
    emit({ event: "request", method, path, status: response.status });
    if (!browserErrors || response.body == null) return response;
    const { status, statusText, headers } = response;
    return new Response(asInBrowser(response.body), { status, statusText, headers });
  } catch (error) {
    emit({ event: "request", method, path, error: error.message });
    throw error;
  }
};

let chat = null;

const settle = (op, promise) =>
  promise.then(
    () => emit({ event: "settled", op, status: chat.status }),
    (error) => emit({ event: "settled", op, status: chat.status, thrown: error.message }),
  );

const commands = {
  open({ chatId, messages = [], body = {}, browserErrors = false, serviceUrl = null }) {
    if (serviceUrl != null) service = new URL(serviceUrl); // the next connections go to another replica
    chat = new Chat({
      id: chatId,
      messages,
      transport: new RecordingTransport({ api: `${base}/chat/ui`, body, fetch: recordingFetch(browserErrors) }),
      onError: (error) => emit({ event: "onError", name: error.name, message: error.message }),
      onFinish: ({ message, isAbort, isDisconnect, isError, finishReason }) =>
        emit({ event: "onFinish", messageId: message.id, isAbort, isDisconnect, isError, finishReason }),
    });
    emit({ event: "opened", chatId });
  },
  send({ text }) {
    settle("send", chat.sendMessage({ text }));
  },
  resume() {
    settle("resume", chat.resumeStream());
  },
  resumeIfDisconnected() {
    settle("resumeIfDisconnected", chat["~resumeStreamIfDisconnected"]());
  },
  cut() {
    const count = open.size;
    for (const { client, upstream } of open) {
      client.destroy();
      upstream.destroy();
    }
    emit({ event: "cut", connections: count });
  },
  report() {
    emit({
      event: "report",
      status: chat.status,
      error: chat.error ? { name: chat.error.name, message: chat.error.message } : null,
      messages: chat.messages,
    });
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { op, ...args } = JSON.parse(line);
  if (op === "exit") break;
  commands[op](args);
}
proxy.close();
for (const { client, upstream } of open) {
  client.destroy();
  upstream.destroy();
}
process.exit(0);
