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
 */
import { EventStreamCodec, type Message } from '@smithy/core/event-streams';
import { fromUtf8, toUtf8 } from '@smithy/core/serde';
import { DEFAULT_MAX_EVENT_BYTES } from './sse-parser.js';
import { errorMessageOf, estimateTokens, fromBedrockUsage, isObject, objectAt, type UsageMeter, type UsageReport } from './response-usage.js';
import type { TokenUsage } from './token-usage.js';

/** Prelude (12 bytes) plus the message CRC (4): the smallest message. */
const MIN_MESSAGE_BYTES = 16;

const codec = new EventStreamCodec(toUtf8, fromUtf8);

export function createEventStreamMeter(options: { readonly maxEventBytes?: number | undefined } = {}): UsageMeter {
  const maxMessageBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
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
      payload = JSON.parse(toUtf8(message.body));
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
      const head = pending[0]!.length >= 4 ? pending[0]! : Buffer.concat(pending);
      const total = head.readUInt32BE(0);
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

  /** Removes and returns the first `length` pending bytes. */
  function take(length: number): Buffer {
    const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const taken = all.subarray(0, length);
    const rest = all.subarray(length);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return taken;
  }

  const report = (): UsageReport => ({ usage, modelServed: undefined, estimatedOutputTokens: estimateTokens(outputChars), complete, providerError });
  return {
    push(chunk) {
      if (broken || chunk.length === 0) return;
      // Copied: Envoy's chunk buffers are reused once the reply is sent.
      pending.push(Buffer.from(chunk));
      pendingBytes += chunk.length;
      drain();
    },
    end: report,
    snapshot: report,
    get retainedBytes() {
      return pendingBytes;
    },
  };
}
