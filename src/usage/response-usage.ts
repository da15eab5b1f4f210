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
  if (contentType === 'application/json') return 'json';
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

/** The keys a JSON body's scan acts on, as bytes (a key is compared in place: no string per key). */
interface KeyEntry {
  readonly bytes: Uint8Array;
  readonly key: Key;
}

const keyEntries = (pairs: readonly [string, Key][]): readonly KeyEntry[] => pairs.map(([name, key]) => ({ bytes: Buffer.from(name, 'latin1'), key }));
const TEXT_KEYS: readonly [string, Key][] = [
  ['content', Key.Text],
  ['text', Key.Text],
  ['thinking', Key.Text],
  ['arguments', Key.Text],
  ['refusal', Key.Text],
];
const KEYS = keyEntries([['model', Key.Model], ['usage', Key.Usage], ['error', Key.Error], ...TEXT_KEYS]);
/** Gemini names its usage `usageMetadata` and the model served `modelVersion`. */
const GEMINI_KEYS = keyEntries([['modelVersion', Key.Model], ['usageMetadata', Key.Usage], ['error', Key.Error], ...TEXT_KEYS]);

function createJsonMeter(api: AiApi, maxCaptureBytes: number): UsageMeter {
  return new JsonMeter(FORMAT_OF[api], maxCaptureBytes);
}

/**
 * A class rather than closures: one meter is made per JSON answer, and an object with its state
 * in fields costs a fraction of a dozen closures and their context (bench/RESULTS.md, issue 18).
 */
class JsonMeter implements UsageMeter {
  private readonly keys: readonly KeyEntry[];
  // The depth of the objects whose keys are read: 1, or 2 when the body is an array of them
  // (Gemini's streamGenerateContent without alt=sse: each element repeats the cumulative usage, the last wins).
  private rootDepth = 1;
  private depth = 0;
  // Plain arrays grown as the body nests: a typed array over 64 bytes is allocated outside V8's heap, which costs more than the scan of a small answer.
  /** Per tracked depth: 1 = object, 0 = array. */
  private readonly objectAt: number[] = [0];
  /** Per tracked depth: the last complete key. */
  private readonly lastKeyAt: number[] = [Key.Other];
  /** The key being read: its first MAX_KEY_BYTES bytes. */
  private readonly keyBytes: number[] = [];
  private expectKey = false;
  private inString = false;
  private stringIsKey = false;
  private escaped = false;
  private hexDigitsLeft = 0;
  private stringCounts = false;
  private keyLength = 0;
  private keyHasEscape = false;

  private capturing: Key.Model | Key.Usage | Key.Error | undefined = undefined;
  private captureParts: Buffer[] | undefined = undefined;
  private captureBytes = 0;
  private captureOverflow = false;
  private captureFrom = -1;
  private modelText: string | undefined = undefined;
  private usageText: string | undefined = undefined;
  private errorText: string | undefined = undefined;
  private topLevelClosed = false;
  private outputChars = 0;

  constructor(
    private readonly format: WireFormat,
    private readonly maxCaptureBytes: number,
  ) {
    this.keys = format === 'gemini' ? GEMINI_KEYS : KEYS;
  }

  push(input: Uint8Array): void {
    if (input.length === 0 || this.topLevelClosed) return;
    const chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    this.scan(chunk);
    // The chunk ended inside a captured value: keep its tail.
    if (this.capturing !== undefined && this.captureFrom >= 0) {
      this.appendCapture(chunk, this.captureFrom, chunk.length);
      this.captureFrom = -1;
    }
  }

  end(): UsageReport {
    return this.report();
  }

  snapshot(): UsageReport {
    return this.report();
  }

  get retainedBytes(): number {
    return this.captureBytes + (this.usageText?.length ?? 0) + (this.modelText?.length ?? 0) + (this.errorText?.length ?? 0);
  }

  private report(): UsageReport {
    const usageJson = parsed(this.usageText);
    const model = parsed(this.modelText);
    const error = parsed(this.errorText);
    const usage = isObject(usageJson) ? usageFromJson(this.format, usageJson) : undefined;
    return {
      usage,
      modelServed: typeof model === 'string' && model.length > 0 ? model : undefined,
      estimatedOutputTokens: estimateTokens(this.outputChars),
      complete: usage !== undefined && this.topLevelClosed,
      providerError: errorMessageOf(error),
    };
  }

  private startCapture(key: Key.Model | Key.Usage | Key.Error, from: number): void {
    this.capturing = key;
    this.captureParts = undefined;
    this.captureBytes = 0;
    this.captureOverflow = false;
    this.captureFrom = from;
  }

  private appendCapture(chunk: Buffer, from: number, to: number): void {
    if (to <= from || this.captureOverflow) return;
    if (this.captureBytes + (to - from) > this.maxCaptureBytes) {
      this.captureParts = undefined;
      this.captureBytes = 0;
      this.captureOverflow = true;
      return;
    }
    (this.captureParts ??= []).push(Buffer.from(chunk.subarray(from, to)));
    this.captureBytes += to - from;
  }

  private finishCapture(chunk: Buffer, end: number): void {
    let text: string | undefined;
    if (this.captureParts === undefined && !this.captureOverflow && this.captureFrom >= 0) {
      // The whole value is in this chunk (nearly always): read it in place, no copy.
      if (this.captureBytes + (end - this.captureFrom) <= this.maxCaptureBytes) text = chunk.toString('utf8', this.captureFrom, end);
    } else {
      this.appendCapture(chunk, this.captureFrom, end);
      text = this.captureOverflow ? undefined : this.captureParts === undefined ? '' : Buffer.concat(this.captureParts, this.captureBytes).toString('utf8');
    }
    if (this.capturing === Key.Model) this.modelText = text;
    else if (this.capturing === Key.Usage) this.usageText = text;
    else if (this.capturing === Key.Error) this.errorText = text;
    this.capturing = undefined;
    this.captureParts = undefined;
    this.captureBytes = 0;
    this.captureOverflow = false;
    this.captureFrom = -1;
  }

  /** The key just read, matched byte for byte against the few the scan acts on. */
  private keyRead(): Key {
    const length = this.keyLength;
    if (this.keyHasEscape || length > MAX_KEY_BYTES) return Key.Other;
    const { keyBytes } = this;
    for (const entry of this.keys) {
      const { bytes } = entry;
      if (bytes.length !== length) continue;
      let at = 0;
      while (at < length && bytes[at] === keyBytes[at]) at += 1;
      if (at === length) return entry.key;
    }
    return Key.Other;
  }

  private scan(chunk: Buffer): void {
    const length = chunk.length;
    const { objectAt, lastKeyAt, keyBytes } = this;
    let index = 0;
    if (this.capturing !== undefined) this.captureFrom = 0;
    // Next positions of the bytes the fast paths look for (-2: not searched yet, -1: none left in this chunk).
    let nextQuote = -2;
    let nextBackslash = -2;
    let nextOpenBrace = -2;
    let nextOpenBracket = -2;
    let nextCloseBracket = -2;
    while (index < length) {
      if (this.inString && !this.stringIsKey && !this.stringCounts) {
        // A string we neither keep nor count: jump to its closing quote with native searches.
        if (this.escaped) {
          this.escaped = false;
          index += 1;
          continue;
        }
        if (nextQuote !== -1 && nextQuote < index) nextQuote = chunk.indexOf(QUOTE, index);
        if (nextBackslash !== -1 && nextBackslash < index) nextBackslash = chunk.indexOf(BACKSLASH, index);
        if (nextQuote === -1 && nextBackslash === -1) return;
        if (nextBackslash !== -1 && (nextQuote === -1 || nextBackslash < nextQuote)) {
          // Skip the escaped byte (hex digits of \uXXXX are harmless here).
          if (nextBackslash + 1 >= length) {
            this.escaped = true;
            return;
          }
          index = nextBackslash + 2;
          continue;
        }
        this.inString = false;
        index = nextQuote + 1;
        continue;
      }
      const depth = this.depth;
      if (!this.inString && this.capturing === undefined && depth >= 1 && depth <= MAX_TRACKED_DEPTH && objectAt[depth] === 0) {
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
      if (this.inString && this.stringCounts) {
        // Generated text: count UTF-16 units, as String.length would after JSON.parse.
        if (this.hexDigitsLeft > 0) {
          // The XXXX of \uXXXX: one unit, counted at the u.
          const skipped = Math.min(this.hexDigitsLeft, length - index);
          this.hexDigitsLeft -= skipped;
          index += skipped;
          continue;
        }
        if (this.escaped) {
          this.escaped = false;
          this.outputChars += 1;
          if (chunk[index] === 0x75 /* u */) this.hexDigitsLeft = 4;
          index += 1;
          continue;
        }
        if (nextQuote !== -1 && nextQuote < index) nextQuote = chunk.indexOf(QUOTE, index);
        if (nextBackslash !== -1 && nextBackslash < index) nextBackslash = chunk.indexOf(BACKSLASH, index);
        let stop = length;
        if (nextQuote !== -1 && nextQuote < stop) stop = nextQuote;
        if (nextBackslash !== -1 && nextBackslash < stop) stop = nextBackslash;
        if (isAscii(chunk.subarray(index, stop))) {
          this.outputChars += stop - index;
        } else {
          // One per character, two for a 4-byte UTF-8 one (a surrogate pair).
          for (let at = index; at < stop; at += 1) {
            const byte = chunk[at]!;
            if ((byte & 0xc0) !== 0x80) this.outputChars += byte >= 0xf0 ? 2 : 1;
          }
        }
        if (stop === length) return;
        if (chunk[stop] === QUOTE) this.inString = false;
        else this.escaped = true;
        index = stop + 1;
        continue;
      }
      if (this.inString) {
        // A key: byte by byte, keeping its first bytes.
        let next = index;
        let keyLength = this.keyLength;
        while (next < length) {
          const byte = chunk[next]!;
          if (this.escaped) {
            this.escaped = false;
            this.keyHasEscape = true;
          } else if (byte === BACKSLASH) {
            this.escaped = true;
          } else if (byte === QUOTE) {
            break;
          } else {
            if (keyLength < MAX_KEY_BYTES) keyBytes[keyLength] = byte;
            keyLength += 1;
          }
          next += 1;
        }
        this.keyLength = keyLength;
        if (next === length) return;
        this.inString = false;
        if (depth <= MAX_TRACKED_DEPTH) lastKeyAt[depth] = this.keyRead();
        index = next + 1;
        continue;
      }
      const byte = chunk[index]!;
      switch (byte) {
        case QUOTE:
          this.inString = true;
          this.escaped = false;
          this.hexDigitsLeft = 0;
          this.stringIsKey = this.expectKey && depth <= MAX_TRACKED_DEPTH && objectAt[depth] === 1;
          if (this.stringIsKey) {
            this.keyLength = 0;
            this.keyHasEscape = false;
            this.stringCounts = false;
          } else {
            this.stringCounts = depth > this.rootDepth && depth <= MAX_TRACKED_DEPTH && objectAt[depth] === 1 && lastKeyAt[depth] === Key.Text;
          }
          break;
        case OPEN_BRACE:
        case OPEN_BRACKET: {
          if (depth === 0 && byte === OPEN_BRACKET && this.format === 'gemini') this.rootDepth = 2;
          const inner = depth + 1;
          this.depth = inner;
          if (inner <= MAX_TRACKED_DEPTH) {
            objectAt[inner] = byte === OPEN_BRACE ? 1 : 0;
            lastKeyAt[inner] = Key.Other;
          }
          this.expectKey = byte === OPEN_BRACE;
          break;
        }
        case CLOSE_BRACE:
        case CLOSE_BRACKET:
          if (depth === this.rootDepth && this.capturing !== undefined) this.finishCapture(chunk, index);
          if (depth === 1) this.topLevelClosed = true;
          if (depth > 0) this.depth = depth - 1;
          this.expectKey = false;
          break;
        case COMMA:
          if (depth === this.rootDepth && this.capturing !== undefined) this.finishCapture(chunk, index);
          this.expectKey = depth <= MAX_TRACKED_DEPTH && objectAt[depth] === 1;
          break;
        case COLON:
          this.expectKey = false;
          if (depth === this.rootDepth && !this.topLevelClosed && objectAt[this.rootDepth] === 1) {
            const key = lastKeyAt[this.rootDepth];
            if (key === Key.Model || key === Key.Usage || key === Key.Error) this.startCapture(key, index + 1);
          }
          break;
        default:
          break;
      }
      index += 1;
    }
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
