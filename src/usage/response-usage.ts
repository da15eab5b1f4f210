/**
 * Reads an LLM response body as it streams past, for the provider's own token usage.
 *
 * - `text/event-stream`: the SSE events of each API (OpenAI Chat Completions chunks with the
 *   final `usage` chunk, Responses API `response.completed|incomplete|failed`, Anthropic
 *   `message_start` + cumulative `message_delta`), and the text deltas for an estimate.
 * - JSON: a small incremental scanner that keeps only the top-level `model`, `usage` and
 *   `error` values (each capture bounded) and counts the characters of output text strings,
 *   skipping everything else — a 20 MB embeddings body costs a few hundred bytes of memory.
 *
 * Memory per stream is bounded whatever the response size: the SSE parser holds at most
 * `maxEventBytes` (one event), the JSON scanner at most 3 × `maxJsonBytes` plus a fixed stack.
 * An SSE event over the bound is dropped: were it the one carrying the usage (a Responses API
 * output over 8 MiB, whose terminal event repeats it), the report falls back to the estimate.
 */
import { isAscii } from 'node:buffer';
import { FORMAT_OF, isFreeApi, type AiApi, type WireFormat } from './ai-api.js';
import { createEventStreamMeter } from './event-stream-usage.js';
import {
  errorMessageOf,
  estimateTokens,
  fromAnthropicCounts,
  fromGeminiUsage,
  fromOpenAiChatUsage,
  fromOpenAiResponsesUsage,
  isObject,
  mergeAnthropicUsage,
  objectAt,
  usageFromJson,
  type AnthropicCounts,
} from './provider-usage.js';
import { createSseParser, DEFAULT_MAX_EVENT_BYTES, type SseEvent } from './sse-parser.js';
import type { TokenUsage } from './token-usage.js';
import type { UsageMeter, UsageReport } from './usage-meter.js';

export type { UsageMeter, UsageReport } from './usage-meter.js';

export interface UsageMeterOptions {
  readonly api: AiApi;
  readonly contentType: string | undefined;
  /** Largest SSE event kept (default 1 MiB; 8 MiB for the Responses API); larger ones are dropped. */
  readonly maxEventBytes?: number;
  /** Largest top-level `usage` / `model` / `error` value captured from a JSON body (default 64 KiB). */
  readonly maxJsonBytes?: number;
}

export const DEFAULT_MAX_JSON_CAPTURE_BYTES = 64 * 1024;
/**
 * The Responses API's terminal event (response.completed and the others) repeats the whole output
 * beside the usage, so it is as large as the response: its bound is higher than the other APIs' small events.
 */
export const DEFAULT_MAX_RESPONSES_EVENT_BYTES = 8 * 1024 * 1024;

export function createUsageMeter(options: UsageMeterOptions): UsageMeter {
  const wire = FORMAT_OF[options.api];
  // A batch's (or background response's) creation reply carries no usage: the provider bills it later.
  // A token count's reply carries none either: it is free.
  if (wire === 'openai.batches' || wire === 'anthropic.batches' || isFreeApi(options.api)) return IGNORED_BODY;
  const format = bodyFormatOf(options.contentType);
  if (format === 'eventstream') {
    if (wire === 'bedrock.converse') return createEventStreamMeter({ maxEventBytes: options.maxEventBytes });
    // InvokeModel's stream: Anthropic's own events, each base64 inside a `chunk` message.
    if (wire === 'bedrock.invoke') return createEventStreamMeter({ maxEventBytes: options.maxEventBytes, chunks: createSseMeter('anthropic.messages', options.maxEventBytes) });
    return IGNORED_BODY;
  }
  if (format === 'sse') return createSseMeter(options.api, options.maxEventBytes);
  if (format === 'json') return createJsonMeter(options.api, options.maxJsonBytes ?? DEFAULT_MAX_JSON_CAPTURE_BYTES);
  if (format === 'other') return IGNORED_BODY;
  // No content type: decide on the first bytes of the body.
  let delegate: UsageMeter | undefined;
  return {
    push(chunk) {
      if (delegate === undefined) {
        const first = firstSignificantByte(chunk);
        if (first === undefined) return;
        delegate =
          first === OPEN_BRACE || first === OPEN_BRACKET
            ? createJsonMeter(options.api, options.maxJsonBytes ?? DEFAULT_MAX_JSON_CAPTURE_BYTES)
            : first === COLON || first === 0x64 /* d(ata) */ || first === 0x65 /* e(vent) */
              ? createSseMeter(options.api, options.maxEventBytes)
              : IGNORED_BODY;
      }
      delegate.push(chunk);
    },
    end: () => (delegate ?? IGNORED_BODY).end(),
    snapshot: () => (delegate ?? IGNORED_BODY).snapshot(),
    get retainedBytes() {
      return delegate?.retainedBytes ?? 0;
    },
  };
}

type BodyFormat = 'sse' | 'json' | 'eventstream' | 'unknown' | 'other';

function bodyFormatOf(contentType: string | undefined): BodyFormat {
  if (contentType === undefined || contentType.trim() === '') return 'unknown';
  const mediaType = (contentType.split(';', 1)[0] ?? '').trim().toLowerCase();
  if (mediaType === 'text/event-stream') return 'sse';
  if (mediaType === 'application/vnd.amazon.eventstream') return 'eventstream';
  if (mediaType === 'application/json' || mediaType.endsWith('+json')) return 'json';
  return 'other';
}

export const NOTHING: UsageReport = Object.freeze({ usage: undefined, modelServed: undefined, estimatedOutputTokens: 0, complete: false, providerError: undefined });

/** A body that is neither JSON nor SSE (an HTML error page, plain text): nothing to read. */
const IGNORED_BODY: UsageMeter = Object.freeze({ push() {}, end: () => NOTHING, snapshot: () => NOTHING, retainedBytes: 0 });

function firstSignificantByte(chunk: Uint8Array): number | undefined {
  for (let index = 0; index < chunk.length; index += 1) {
    const byte = chunk[index]!;
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0xef && byte !== 0xbb && byte !== 0xbf) return byte;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// SSE

function createSseMeter(api: AiApi, maxEventBytes: number | undefined): UsageMeter {
  const format = FORMAT_OF[api];
  const parser = createSseParser({ maxEventBytes: maxEventBytes ?? (FORMAT_OF[api] === 'openai.responses' ? DEFAULT_MAX_RESPONSES_EVENT_BYTES : DEFAULT_MAX_EVENT_BYTES) });
  let usage: TokenUsage | undefined;
  let modelServed: string | undefined;
  let outputChars = 0;
  let complete = false;
  let providerError: string | undefined;
  // Anthropic: the running, cumulative counts.
  const anthropic: AnthropicCounts = { input: 0, cacheRead: 0, cacheCreation: 0, output: 0 };
  let anthropicStarted = false;
  let geminiFinished = false;

  const noteModel = (model: unknown) => {
    if (modelServed === undefined && typeof model === 'string' && model.length > 0) modelServed = model;
  };
  const addText = (text: unknown) => {
    if (typeof text === 'string') outputChars += text.length;
  };

  function onChatChunk(chunk: Record<string, unknown>): void {
    noteModel(chunk.model);
    if (chunk.error !== undefined) providerError = errorMessageOf(chunk.error);
    const choices = chunk.choices;
    if (Array.isArray(choices)) {
      for (const choice of choices) {
        // Legacy Completions stream `choices[].text`.
        if (isObject(choice)) addText(choice.text);
        const delta = objectAt(choice, 'delta');
        if (delta === undefined) continue;
        addText(delta.content);
        addText(delta.refusal);
        if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) addText(objectAt(call, 'function')?.arguments);
      }
    }
    if (isObject(chunk.usage)) {
      usage = fromOpenAiChatUsage(chunk.usage);
      complete = true;
    }
  }

  /** Gemini: every chunk repeats the usage so far (cumulative: the last wins); the final one has a finishReason. */
  function onGeminiChunk(chunk: Record<string, unknown>): void {
    noteModel(chunk.modelVersion);
    if (chunk.error !== undefined) providerError = errorMessageOf(chunk.error);
    if (Array.isArray(chunk.candidates)) {
      for (const candidate of chunk.candidates) {
        if (!isObject(candidate)) continue;
        if (typeof candidate.finishReason === 'string' && candidate.finishReason.length > 0) geminiFinished = true;
        const parts = objectAt(candidate, 'content')?.parts;
        if (Array.isArray(parts)) for (const part of parts) if (isObject(part)) addText(part.text);
      }
    }
    // The usage that comes with the finish (or after it) is the whole usage.
    if (isObject(chunk.usageMetadata)) {
      usage = fromGeminiUsage(chunk.usageMetadata);
      if (geminiFinished) complete = true;
    }
  }

  function onResponsesEvent(type: string, payload: Record<string, unknown>): void {
    switch (type) {
      case 'response.output_text.delta':
      case 'response.refusal.delta':
      case 'response.function_call_arguments.delta':
      case 'response.reasoning_summary_text.delta':
      case 'response.reasoning_text.delta':
        addText(payload.delta);
        return;
      case 'response.created':
      case 'response.in_progress':
        noteModel(objectAt(payload, 'response')?.model);
        return;
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed': {
        const response = objectAt(payload, 'response');
        noteModel(response?.model);
        const responseUsage = objectAt(response, 'usage');
        if (responseUsage !== undefined) {
          usage = fromOpenAiResponsesUsage(responseUsage);
          complete = true;
        }
        if (type === 'response.failed') providerError = errorMessageOf(response?.error) ?? 'response.failed';
        return;
      }
      case 'error':
        providerError = errorMessageOf(payload.error ?? payload) ?? 'error';
        return;
    }
  }

  function onAnthropicEvent(type: string, payload: Record<string, unknown>): void {
    switch (type) {
      case 'content_block_delta': {
        const delta = objectAt(payload, 'delta');
        if (delta === undefined) return;
        addText(delta.text);
        addText(delta.thinking);
        addText(delta.partial_json);
        return;
      }
      case 'message_start': {
        const message = objectAt(payload, 'message');
        noteModel(message?.model);
        const startUsage = objectAt(message, 'usage');
        if (startUsage !== undefined) {
          mergeAnthropicUsage(anthropic, startUsage);
          anthropicStarted = true;
          usage = fromAnthropicCounts(anthropic);
        }
        return;
      }
      case 'message_delta': {
        const deltaUsage = objectAt(payload, 'usage');
        if (deltaUsage !== undefined) {
          mergeAnthropicUsage(anthropic, deltaUsage);
          anthropicStarted = true;
          usage = fromAnthropicCounts(anthropic);
        }
        return;
      }
      case 'message_stop':
        if (anthropicStarted) complete = true;
        return;
      case 'error':
        providerError = errorMessageOf(payload.error ?? payload) ?? 'error';
        return;
    }
  }

  function onEvent(event: SseEvent): void {
    if (event.data === '[DONE]') return;
    let payload: unknown;
    try {
      payload = JSON.parse(event.data);
    } catch {
      return; // Not JSON (a keep-alive or a stray line): nothing to count.
    }
    if (!isObject(payload)) return;
    const type = typeof payload.type === 'string' ? payload.type : (event.event ?? '');
    if (format === 'gemini') onGeminiChunk(payload);
    else if (format === 'openai.responses') onResponsesEvent(type, payload);
    else if (format === 'anthropic.messages') onAnthropicEvent(type, payload);
    else onChatChunk(payload);
  }

  const report = (): UsageReport => ({ usage, modelServed, estimatedOutputTokens: estimateTokens(outputChars), complete, providerError });
  return {
    push: (chunk) => parser.push(chunk, onEvent),
    end() {
      parser.end(onEvent);
      return report();
    },
    snapshot: report,
    get retainedBytes() {
      return parser.bufferedBytes;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// JSON: an incremental scanner over bytes.
//
// It tracks nesting, strings and escapes across chunks, and keeps:
// - the raw text of the top-level `model`, `usage` and `error` values (each up to maxJsonBytes);
// - for the estimate, the character count of string values whose key is one that holds
//   generated text — `content` (chat choices[].message.content), `text` (Anthropic content[].text,
//   Responses output[].content[].text), `thinking`, `arguments`, `refusal` — below the top level.
//   (Rather than total body bytes ÷ 4, which would call a 20 MB embeddings body 5M tokens.)

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Containers deeper than this are still scanned, but their keys are not tracked (none of ours lives there). */
const MAX_TRACKED_DEPTH = 64;
const MAX_KEY_BYTES = 16;

const enum Key {
  Other,
  Model,
  Usage,
  Error,
  Text,
}

const TEXT_KEYS: readonly [string, Key][] = [
  ['content', Key.Text],
  ['text', Key.Text],
  ['thinking', Key.Text],
  ['arguments', Key.Text],
  ['refusal', Key.Text],
];
const KEYS: ReadonlyMap<string, Key> = new Map([['model', Key.Model], ['usage', Key.Usage], ['error', Key.Error], ...TEXT_KEYS]);
/** Gemini names its usage `usageMetadata` and the model served `modelVersion`. */
const GEMINI_KEYS: ReadonlyMap<string, Key> = new Map([['modelVersion', Key.Model], ['usageMetadata', Key.Usage], ['error', Key.Error], ...TEXT_KEYS]);

interface Capture {
  parts: Buffer[];
  bytes: number;
  overflow: boolean;
}

function createJsonMeter(api: AiApi, maxCaptureBytes: number): UsageMeter {
  const format = FORMAT_OF[api];
  const keys = format === 'gemini' ? GEMINI_KEYS : KEYS;
  // The depth of the objects whose keys are read: 1, or 2 when the body is an array of them
  // (Gemini's streamGenerateContent without alt=sse: each element repeats the cumulative usage, the last wins).
  let rootDepth = 1;
  let depth = 0;
  // Per tracked depth: 1 = object, 0 = array.
  const isObjectAt = new Uint8Array(MAX_TRACKED_DEPTH + 1);
  let expectKey = false;
  let inString = false;
  let stringIsKey = false;
  let escaped = false;
  let hexDigitsLeft = 0;
  let stringCounts = false;
  // The key being read (first MAX_KEY_BYTES bytes) and the last complete key per depth.
  const keyBytes = Buffer.alloc(MAX_KEY_BYTES);
  let keyLength = 0;
  let keyHasEscape = false;
  const lastKey = new Uint8Array(MAX_TRACKED_DEPTH + 1);

  let capturing: Key.Model | Key.Usage | Key.Error | undefined;
  let capture: Capture = { parts: [], bytes: 0, overflow: false };
  let captureFrom = -1;
  let modelText: string | undefined;
  let usageText: string | undefined;
  let errorText: string | undefined;
  let topLevelClosed = false;
  let outputChars = 0;

  function appendCapture(chunk: Buffer, from: number, to: number): void {
    if (to <= from || capture.overflow) return;
    if (capture.bytes + (to - from) > maxCaptureBytes) {
      capture = { parts: [], bytes: 0, overflow: true };
      return;
    }
    capture.parts.push(Buffer.from(chunk.subarray(from, to)));
    capture.bytes += to - from;
  }

  function finishCapture(chunk: Buffer, end: number): void {
    appendCapture(chunk, captureFrom, end);
    const text = capture.overflow ? undefined : Buffer.concat(capture.parts, capture.bytes).toString('utf8');
    if (capturing === Key.Model) modelText = text;
    else if (capturing === Key.Usage) usageText = text;
    else if (capturing === Key.Error) errorText = text;
    capturing = undefined;
    capture = { parts: [], bytes: 0, overflow: false };
    captureFrom = -1;
  }

  function endKey(): void {
    const key = keyHasEscape || keyLength > MAX_KEY_BYTES ? Key.Other : (keys.get(keyBytes.toString('latin1', 0, keyLength)) ?? Key.Other);
    if (depth <= MAX_TRACKED_DEPTH) lastKey[depth] = key;
  }

  function scan(chunk: Buffer): void {
    const length = chunk.length;
    let index = 0;
    if (capturing !== undefined) captureFrom = 0;
    // Next positions of the bytes the fast paths look for (-2: not searched yet, -1: none left in this chunk).
    let nextQuote = -2;
    let nextBackslash = -2;
    let nextOpenBrace = -2;
    let nextOpenBracket = -2;
    let nextCloseBracket = -2;
    while (index < length) {
      if (inString && !stringIsKey && !stringCounts) {
        // A string we neither keep nor count: jump to its closing quote with native searches.
        if (escaped) {
          escaped = false;
          index += 1;
          continue;
        }
        if (nextQuote !== -1 && nextQuote < index) nextQuote = chunk.indexOf(QUOTE, index);
        if (nextBackslash !== -1 && nextBackslash < index) nextBackslash = chunk.indexOf(BACKSLASH, index);
        if (nextQuote === -1 && nextBackslash === -1) return;
        if (nextBackslash !== -1 && (nextQuote === -1 || nextBackslash < nextQuote)) {
          // Skip the escaped byte (hex digits of \uXXXX are harmless here).
          if (nextBackslash + 1 >= length) {
            escaped = true;
            return;
          }
          index = nextBackslash + 2;
          continue;
        }
        inString = false;
        index = nextQuote + 1;
        continue;
      }
      if (!inString && capturing === undefined && depth >= 1 && depth <= MAX_TRACKED_DEPTH && isObjectAt[depth] === 0) {
        // Inside an array (an embedding vector): only a string, a nested container or its end matter.
        if (nextQuote !== -1 && nextQuote < index) nextQuote = chunk.indexOf(QUOTE, index);
        if (nextOpenBrace !== -1 && nextOpenBrace < index) nextOpenBrace = chunk.indexOf(OPEN_BRACE, index);
        if (nextOpenBracket !== -1 && nextOpenBracket < index) nextOpenBracket = chunk.indexOf(OPEN_BRACKET, index);
        if (nextCloseBracket !== -1 && nextCloseBracket < index) nextCloseBracket = chunk.indexOf(CLOSE_BRACKET, index);
        let stop = length;
        if (nextQuote !== -1 && nextQuote < stop) stop = nextQuote;
        if (nextOpenBrace !== -1 && nextOpenBrace < stop) stop = nextOpenBrace;
        if (nextOpenBracket !== -1 && nextOpenBracket < stop) stop = nextOpenBracket;
        if (nextCloseBracket !== -1 && nextCloseBracket < stop) stop = nextCloseBracket;
        if (stop === length) return;
        index = stop;
      }
      if (inString && stringCounts) {
        // Generated text: count UTF-16 units, as String.length would after JSON.parse.
        if (hexDigitsLeft > 0) {
          // The XXXX of \uXXXX: one unit, counted at the u.
          const skipped = Math.min(hexDigitsLeft, length - index);
          hexDigitsLeft -= skipped;
          index += skipped;
          continue;
        }
        if (escaped) {
          escaped = false;
          outputChars += 1;
          if (chunk[index] === 0x75 /* u */) hexDigitsLeft = 4;
          index += 1;
          continue;
        }
        if (nextQuote !== -1 && nextQuote < index) nextQuote = chunk.indexOf(QUOTE, index);
        if (nextBackslash !== -1 && nextBackslash < index) nextBackslash = chunk.indexOf(BACKSLASH, index);
        let stop = length;
        if (nextQuote !== -1 && nextQuote < stop) stop = nextQuote;
        if (nextBackslash !== -1 && nextBackslash < stop) stop = nextBackslash;
        if (isAscii(chunk.subarray(index, stop))) {
          outputChars += stop - index;
        } else {
          // One per character, two for a 4-byte UTF-8 one (a surrogate pair).
          for (let at = index; at < stop; at += 1) {
            const byte = chunk[at]!;
            if ((byte & 0xc0) !== 0x80) outputChars += byte >= 0xf0 ? 2 : 1;
          }
        }
        if (stop === length) return;
        if (chunk[stop] === QUOTE) inString = false;
        else escaped = true;
        index = stop + 1;
        continue;
      }
      if (inString) {
        // A key: byte by byte, keeping its first bytes.
        let next = index;
        while (next < length) {
          const byte = chunk[next]!;
          if (escaped) {
            escaped = false;
            keyHasEscape = true;
          } else if (byte === BACKSLASH) {
            escaped = true;
          } else if (byte === QUOTE) {
            break;
          } else {
            if (keyLength < MAX_KEY_BYTES) keyBytes[keyLength] = byte;
            keyLength += 1;
          }
          next += 1;
        }
        if (next === length) return;
        inString = false;
        endKey();
        index = next + 1;
        continue;
      }
      const byte = chunk[index]!;
      switch (byte) {
        case QUOTE:
          inString = true;
          escaped = false;
          hexDigitsLeft = 0;
          stringIsKey = expectKey && depth <= MAX_TRACKED_DEPTH && isObjectAt[depth] === 1;
          if (stringIsKey) {
            keyLength = 0;
            keyHasEscape = false;
            stringCounts = false;
          } else {
            stringCounts = depth > rootDepth && depth <= MAX_TRACKED_DEPTH && isObjectAt[depth] === 1 && lastKey[depth] === Key.Text;
          }
          break;
        case OPEN_BRACE:
        case OPEN_BRACKET:
          if (depth === 0 && byte === OPEN_BRACKET && format === 'gemini') rootDepth = 2;
          depth += 1;
          if (depth <= MAX_TRACKED_DEPTH) {
            isObjectAt[depth] = byte === OPEN_BRACE ? 1 : 0;
            lastKey[depth] = Key.Other;
          }
          expectKey = byte === OPEN_BRACE;
          break;
        case CLOSE_BRACE:
        case CLOSE_BRACKET:
          if (depth === rootDepth && capturing !== undefined) finishCapture(chunk, index);
          if (depth === 1) topLevelClosed = true;
          if (depth > 0) depth -= 1;
          expectKey = false;
          break;
        case COMMA:
          if (depth === rootDepth && capturing !== undefined) finishCapture(chunk, index);
          expectKey = depth <= MAX_TRACKED_DEPTH && isObjectAt[depth] === 1;
          break;
        case COLON:
          expectKey = false;
          if (depth === rootDepth && !topLevelClosed && isObjectAt[rootDepth] === 1) {
            const key = lastKey[rootDepth];
            if (key === Key.Model || key === Key.Usage || key === Key.Error) {
              capturing = key;
              capture = { parts: [], bytes: 0, overflow: false };
              captureFrom = index + 1;
            }
          }
          break;
        default:
          break;
      }
      index += 1;
    }
  }

  function parsed(text: string | undefined): unknown {
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  }

  const report = (): UsageReport => {
    const usageJson = parsed(usageText);
    const model = parsed(modelText);
    const error = parsed(errorText);
    const usage = isObject(usageJson) ? usageFromJson(format, usageJson) : undefined;
    return {
      usage,
      modelServed: typeof model === 'string' && model.length > 0 ? model : undefined,
      estimatedOutputTokens: estimateTokens(outputChars),
      complete: usage !== undefined && topLevelClosed,
      providerError: errorMessageOf(error),
    };
  };

  return {
    push(input) {
      if (input.length === 0 || topLevelClosed) return;
      const chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
      scan(chunk);
      // The chunk ended inside a captured value: keep its tail.
      if (capturing !== undefined && captureFrom >= 0) {
        appendCapture(chunk, captureFrom, chunk.length);
        captureFrom = -1;
      }
    },
    end: report,
    snapshot: report,
    get retainedBytes() {
      return capture.bytes + (usageText?.length ?? 0) + (modelText?.length ?? 0) + (errorText?.length ?? 0);
    },
  };
}
