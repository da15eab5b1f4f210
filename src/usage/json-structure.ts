/**
 * One pass over a JSON body's bytes, before it is parsed, for what JSON.parse lets through but an
 * AI request must not carry:
 * - a key twice in one object: JSON.parse keeps the last, other readers (an upstream) may keep the
 *   first, so `{"model":"claude-opus-4-1","model":"claude-haiku-4-5"}` could be authorized as one
 *   model and served as the other. Checked in every object, not only at the top: `stream_options`,
 *   a batch's `params` and a config object carry fields the service acts on too, and no JSON
 *   encoder writes a key twice.
 * - nesting deeper than MAX_JSON_DEPTH: recursive readers and writers (JSON.stringify in the
 *   body rewrite) overflow the stack on a few thousand levels.
 * - the same key in two cases (`"model"` and `"Model"`, or `"max_to\u212Aens"` with a Kelvin sign) in
 *   an object within FOLDED_DEPTH: Go's encoding/json (Ollama, Envoy AI Gateway, many self-hosted
 *   OpenAI-compatible servers) matches keys ignoring case, Unicode folding included, and keeps the
 *   last, so such a body is one model to JSON.parse and another upstream. Deeper objects (tool
 *   schemas' `properties`) may hold keys that differ only in case, and the service reads nothing there.
 * Invalid JSON is not this scanner's business: it stops and leaves the syntax error to JSON.parse.
 */

/** Deepest nesting of objects and arrays accepted in an AI request body (real requests, tool schemas included, stay far below). */
export const MAX_JSON_DEPTH = 128;
/** Objects this deep or shallower (the top level is 1; a batch's requests[].params is 4) compare keys ignoring case. */
const FOLDED_DEPTH = 4;
/**
 * The fields the service acts on, as providers spell them. At the top level and in the objects that
 * hold them, another case of one (`"MAX_TOKENS"` alone) is refused too: JSON.parse reads no cap
 * there, a case-ignoring reader reads the client's.
 */
const GOVERNED_KEYS: ReadonlySet<string> = new Set([
  'model', 'stream', 'stream_options', 'include_usage', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'n', 'best_of', 'background', 'service_tier',
  'previous_response_id', 'conversation', 'generationConfig', 'generation_config', 'maxOutputTokens', 'candidateCount', 'candidate_count', 'inferenceConfig', 'maxTokens',
]);
const GOVERNED_FOLDS: ReadonlyMap<string, string> = new Map([...GOVERNED_KEYS].map((key) => [key.toLowerCase(), key]));
/** Where governed keys live: the top level ('') and these objects. */
const GOVERNED_AT: ReadonlySet<string> = new Set(['', 'stream_options', 'generationConfig', 'generation_config', 'inferenceConfig', 'requests[].params']);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MAX_KEY_IN_MESSAGE = 64;

interface Frame {
  readonly object: boolean;
  /** The container this one is in, and the key it is under there (for `at`). */
  readonly parent: Frame | undefined;
  readonly parentKey: string;
  /** Where this container sits, for messages: `stream_options`, `requests[]` (built when first asked: only a problem needs it). */
  at: string | undefined;
  expectKey: boolean;
  lastKey: string;
  keys: Set<string> | undefined;
  /** Keys compared ignoring case (see FOLDED_DEPTH). */
  readonly folded: boolean;
}

/** A message naming the problem, or undefined when the body has none (or is not JSON at all). */
export function jsonStructureProblem(body: Uint8Array, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const stack: Frame[] = [];
  const length = bytes.length;
  let top: Frame | undefined;
  for (let index = 0; index < length; index++) {
    const byte = bytes[index]!;
    switch (byte) {
      case QUOTE: {
        const end = closingQuote(bytes, index + 1);
        if (end === -1) return undefined;
        if (top?.object && top.expectKey) {
          const key = keyText(bytes, index + 1, end);
          if (key === undefined) return undefined;
          top.keys ??= new Set();
          const seen = top.folded ? foldCase(key) : key;
          if (top.keys.has(seen)) return `request body has the key ${JSON.stringify(cut(key))} twice ${where(top)}${top.folded ? ' (keys that differ only in case are one key to readers that ignore case)' : ''}: JSON readers disagree on which one counts`;
          if (top.folded && !GOVERNED_KEYS.has(key) && GOVERNED_FOLDS.has(seen) && GOVERNED_AT.has(pathOf(top))) {
            return `request body has the key ${JSON.stringify(cut(key))} ${where(top)}: the field is spelled ${JSON.stringify(GOVERNED_FOLDS.get(seen))}, and readers that ignore case would act on it unseen`;
          }
          top.keys.add(seen);
          top.lastKey = key;
          top.expectKey = false;
        }
        index = end;
        break;
      }
      case OPEN_OBJECT:
      case OPEN_ARRAY: {
        if (stack.length >= maxDepth) return `request body nests objects and arrays deeper than ${maxDepth} levels`;
        top = { object: byte === OPEN_OBJECT, parent: top, parentKey: top?.object === true ? top.lastKey : '', at: top === undefined ? '' : undefined, expectKey: byte === OPEN_OBJECT, lastKey: '', keys: undefined, folded: stack.length < FOLDED_DEPTH };
        stack.push(top);
        break;
      }
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        stack.pop();
        top = stack[stack.length - 1];
        break;
      case COMMA:
        if (top?.object) top.expectKey = true;
        break;
      case COLON:
        if (top?.object) top.expectKey = false;
        break;
      default:
        break;
    }
  }
  return undefined;
}

/** The index of the quote that closes a string starting at `from`, or -1 (a JS loop: Buffer#indexOf costs more per call than short strings do). */
function closingQuote(bytes: Buffer, from: number): number {
  const length = bytes.length;
  for (let index = from; index < length; index++) {
    const byte = bytes[index];
    if (byte === QUOTE) return index;
    if (byte === BACKSLASH) index++;
  }
  return -1;
}

/** A key as JSON.parse reads it (`"mod\u0065l"` is `model`); undefined when its escapes are invalid. */
function keyText(bytes: Buffer, start: number, end: number): string | undefined {
  let escaped = false;
  for (let index = start; index < end; index++) {
    if (bytes[index] === BACKSLASH) {
      escaped = true;
      break;
    }
  }
  if (!escaped) return asciiText(bytes, start, end) ?? bytes.toString('utf8', start, end);
  try {
    return JSON.parse(bytes.toString('utf8', start - 1, end + 1)) as string;
  } catch {
    return undefined;
  }
}

/** Short ASCII keys (nearly all) without a trip through Buffer#toString. */
function asciiText(bytes: Buffer, start: number, end: number): string | undefined {
  if (end - start > 32) return undefined;
  let text = '';
  for (let index = start; index < end; index++) {
    const byte = bytes[index]!;
    if (byte >= 0x80) return undefined;
    text += String.fromCharCode(byte);
  }
  return text;
}

/** A key as a case-ignoring reader compares it: lowercased, and through uppercase for the letters whose fold is another letter (U+017F long s is "s", U+212A Kelvin sign is "k"). */
function foldCase(key: string): string {
  const lower = key.toLowerCase();
  for (let index = 0; index < lower.length; index++) if (lower.charCodeAt(index) >= 0x80) return lower.toUpperCase().toLowerCase();
  return lower;
}

/** `at` of a frame, from its parents' (each built once). */
function pathOf(frame: Frame): string {
  if (frame.at !== undefined) return frame.at;
  const parent = frame.parent!;
  const above = pathOf(parent);
  frame.at = parent.object ? join(above, cut(frame.parentKey)) : `${above}[]`;
  return frame.at;
}

function where(frame: Frame): string {
  const at = pathOf(frame);
  return at === '' ? 'at the top level' : `in "${at}"`;
}

function join(at: string, key: string): string {
  return at === '' ? key : `${at}.${key}`;
}

function cut(key: string): string {
  return key.length > MAX_KEY_IN_MESSAGE ? `${key.slice(0, MAX_KEY_IN_MESSAGE)}…` : key;
}
