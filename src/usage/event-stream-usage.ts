/**
 * Reads a Bedrock ConverseStream response (`application/vnd.amazon.eventstream`) for its usage.
 *
 * The AWS event-stream framing is binary: each message is a 4-byte total length, a 4-byte headers
 * length, a prelude CRC, headers, a JSON payload and a message CRC. Messages arrive split at any
 * byte; this module only cuts the byte stream at message boundaries (the length prefix) and hands
 * each whole message to Smithy's codec, which checks both CRCs and decodes the headers.
 *
 * Events: messageStart, contentBlockStart, contentBlockDelta (text, tool input, reasoning),
 * contentBlockStop, messageStop, and `metadata` carrying `usage` (inputTokens, outputTokens,
 * cacheReadInputTokens, cacheWriteInputTokens). An exception message (`:message-type: exception`,
 * e.g. throttlingException mid-stream) is the provider's error.
 *
 * InvokeModel's stream (`chunks` given) carries the model provider's own events instead, each as
 * `{"bytes": "<base64 JSON>"}` in a `chunk` message: they are handed to that provider's meter.
 */
import { createRequire } from 'node:module';
import type { EventStreamCodec, Message } from '@smithy/core/event-streams';
import { DEFAULT_MAX_EVENT_BYTES } from './sse-parser.js';
import { errorMessageOf, estimateTokens, fromBedrockUsage, isObject, objectAt } from './provider-usage.js';
import type { TokenUsage } from './token-usage.js';
import type { UsageMeter, UsageReport } from './usage-meter.js';

/** Prelude (12 bytes) plus the message CRC (4): the smallest message. */
const MIN_MESSAGE_BYTES = 16;

/**
 * Smithy's codec is loaded at the first Bedrock stream, not at start: a process that never sees one
 * does not hold its modules (~2 MB of RSS). The first load takes ~10 ms once per process, on a
 * response whose first byte already waited for the model.
 */
let codec: EventStreamCodec | undefined;
function eventStreamCodec(): EventStreamCodec {
  if (codec) return codec;
  const require = createRequire(import.meta.url);
  const { EventStreamCodec: Codec } = require('@smithy/core/event-streams') as typeof import('@smithy/core/event-streams');
  const { fromUtf8, toUtf8 } = require('@smithy/core/serde') as typeof import('@smithy/core/serde');
  codec = new Codec(toUtf8, fromUtf8);
  return codec;
}

export function createEventStreamMeter(options: { readonly maxEventBytes?: number | undefined; readonly chunks?: UsageMeter | undefined } = {}): UsageMeter {
  const maxMessageBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const codec = eventStreamCodec();
  const chunks = options.chunks;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** Bytes of an oversized message still to drop. */
  let skipping = 0;
  /** The framing broke (a bad length or CRC): nothing after it can be trusted, so nothing more is read. */
  let broken = false;
  let usage: TokenUsage | undefined;
  let outputChars = 0;
  let complete = false;
  let providerError: string | undefined;

  const addText = (text: unknown) => {
    if (typeof text === 'string') outputChars += text.length;
  };

  function onMessage(message: Message): void {
    const header = (name: string) => {
      const value = message.headers[name];
      return value?.type === 'string' ? value.value : undefined;
    };
    const messageType = header(':message-type');
    if (messageType === 'error') {
      providerError = `${header(':error-code') ?? 'error'}: ${header(':error-message') ?? ''}`.trim();
      return;
    }
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString('utf8'));
    } catch {
      payload = undefined;
    }
    if (messageType === 'exception') {
      const kind = header(':exception-type') ?? 'exception';
      const text = isObject(payload) && typeof payload.message === 'string' ? payload.message : errorMessageOf(payload);
      providerError = text ? `${kind}: ${text}` : kind;
      return;
    }
    if (!isObject(payload)) return;
    if (chunks !== undefined) {
      if (header(':event-type') !== 'chunk' || typeof payload.bytes !== 'string') return;
      let inner: unknown;
      try {
        inner = JSON.parse(Buffer.from(payload.bytes, 'base64').toString('utf8'));
      } catch {
        return;
      }
      // One SSE event per chunk, on one line whatever the JSON's own whitespace.
      if (isObject(inner)) chunks.push(Buffer.from(`data: ${JSON.stringify(inner)}\n\n`, 'utf8'));
      return;
    }
    switch (header(':event-type')) {
      case 'contentBlockDelta': {
        const delta = objectAt(payload, 'delta');
        addText(delta?.text);
        addText(objectAt(delta, 'toolUse')?.input);
        addText(objectAt(delta, 'reasoningContent')?.text);
        return;
      }
      case 'metadata': {
        const reported = objectAt(payload, 'usage');
        if (reported !== undefined) {
          usage = fromBedrockUsage(reported);
          complete = true;
        }
        return;
      }
      default:
        return;
    }
  }

  function drain(): void {
    while (!broken) {
      if (skipping > 0) {
        const dropped = Math.min(skipping, pendingBytes);
        take(dropped);
        skipping -= dropped;
        if (skipping > 0) return;
      }
      if (pendingBytes < 4) return;
      const total = leadingUInt32();
      if (total < MIN_MESSAGE_BYTES) {
        broken = true;
        return;
      }
      if (total > maxMessageBytes) {
        // Too big to hold (no real Converse event is): drop it, keep reading after it.
        skipping = total;
        continue;
      }
      if (pendingBytes < total) return;
      const bytes = take(total);
      let message: Message;
      try {
        message = codec.decode(bytes);
      } catch {
        broken = true;
        return;
      }
      onMessage(message);
    }
  }

  /** The first four pending bytes as a big-endian length, read across chunks without copying them all. */
  function leadingUInt32(): number {
    const first = pending[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    let value = 0;
    let read = 0;
    for (const part of pending) {
      for (let index = 0; index < part.length && read < 4; index += 1, read += 1) value = value * 256 + part[index]!;
      if (read === 4) break;
    }
    return value;
  }

  /** Removes and returns the first `length` pending bytes. */
  function take(length: number): Buffer {
    const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const taken = all.subarray(0, length);
    const rest = all.subarray(length);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return taken;
  }

  const report = (inner?: UsageReport): UsageReport =>
    inner !== undefined
      ? { ...inner, providerError: providerError ?? inner.providerError }
      : { usage, modelServed: undefined, estimatedOutputTokens: estimateTokens(outputChars), complete, providerError };
  return {
    push(chunk) {
      if (broken || chunk.length === 0) return;
      // Copied: Envoy's chunk buffers are reused once the reply is sent.
      pending.push(Buffer.from(chunk));
      pendingBytes += chunk.length;
      drain();
    },
    end: () => report(chunks?.end()),
    snapshot: () => report(chunks?.snapshot()),
    get retainedBytes() {
      return pendingBytes + (chunks?.retainedBytes ?? 0);
    },
  };
}
