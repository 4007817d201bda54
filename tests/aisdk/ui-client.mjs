// One turn of a chat, sent the way a React app's `useChat` sends it: the AI SDK's own
// DefaultChatTransport POSTs the conversation and parses the stream with the SDK's strict chunk
// schema; readUIMessageStream builds the assistant message from it, as useChat does.
//
//   node ui-client.mjs '{"url": "http://127.0.0.1:8000/chat/ui", "messages": [...], "body": {...}}'
//
// or the same JSON on stdin, for a conversation too long for a command line.
// Prints one JSON report on stdout: every chunk, the final message, and what went wrong (a
// rejected request, an error chunk). With "abortAfterText": true it aborts the request once the
// first text arrives, as the Stop button of a chat UI does.
import { readFileSync } from "node:fs";
import { DefaultChatTransport, readUIMessageStream } from "ai";

const { url, messages, body, abortAfterText = false } = JSON.parse(process.argv[2] ?? readFileSync(0, "utf8"));

const report = { chunks: [], message: null, updates: 0, streamErrors: [], requestError: null };
const abort = new AbortController();
const transport = new DefaultChatTransport({ api: url, body });

try {
  const stream = await transport.sendMessages({
    chatId: "chat-1",
    messages,
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: abort.signal,
  });
  const [chunks, forMessages] = stream.tee();
  const recording = (async () => {
    for await (const chunk of chunks) {
      report.chunks.push(chunk);
      if (abortAfterText && chunk.type === "text-delta") abort.abort();
    }
  })();
  const onError = (error) => report.streamErrors.push(error.message);
  for await (const message of readUIMessageStream({ stream: forMessages, onError })) {
    report.message = message;
    report.updates += 1;
  }
  await recording;
} catch (error) {
  report.requestError = { name: error.name, message: error.message, statusCode: error.statusCode ?? null };
}

console.log(JSON.stringify(report));
