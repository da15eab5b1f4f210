/**
 * AI request bodies: what the policy needs from them (model, stream, output cap, n, a rough
 * input size), validated with messages that name the field, and the forwarded body's rewrite
 * (include_usage on, a model or an output cap replaced). The body is decoded and parsed once.
 */
import type { AiApi } from './ai-api.js';
import { hasBoundExtras, readRequestBound, type RequestBound } from './request-bound.js';

export interface AiRequest {
  readonly api: AiApi;
  /** As sent, trimmed; NOT lowercased (the caller normalises). */
  readonly model: string;
  readonly stream: boolean;
  /** max_tokens | max_completion_tokens (chat: prefer max_completion_tokens) | max_output_tokens (responses); undefined for embeddings. */
  readonly outputCap: number | undefined;
  /** chat `n`, default 1; 1 for the others. */
  readonly n: number;
  /** Rough: text characters of messages/input/system/instructions/tools ÷ 4, rounded up, ≥ 1; images etc. counted roughly. */
  readonly inputEstimateTokens: number;
  /** openai.chat with stream:true and without stream_options.include_usage:true. */
  readonly needsIncludeUsage: boolean;
  /** What the request can be billed for beyond its body's text (request-bound.ts); absent = nothing. */
  readonly bound?: RequestBound | undefined;
}

export type BodyProblemCode = 'not_json' | 'not_object' | 'model_missing' | 'model_not_string' | 'bad_field';

/** message names the problem and the field, e.g. `request body field "model" must be a string (got number)`. */
export interface BodyProblem {
  readonly code: BodyProblemCode;
  readonly message: string;
}

export type ParsedAiRequest =
  | { readonly ok: true; readonly request: AiRequest; readonly json: Record<string, unknown> }
  | { readonly ok: false; readonly problem: BodyProblem };

/** Longest model id accepted (provider ids are far shorter; this bounds what reaches labels and logs). */
export const MAX_MODEL_LENGTH = 256;

/** Characters counted for one image, audio clip or file part: about 1,000 tokens, between OpenAI's low- and high-detail image costs. */
const ATTACHMENT_CHARS = 4000;
const CHARS_PER_TOKEN = 4;
/** Nesting walked for the estimate; deeper content is not counted (a body that deep is not a real request). */
const MAX_WALK_DEPTH = 32;

const ATTACHMENT_TYPES: ReadonlySet<string> = new Set(['image_url', 'input_image', 'image', 'document', 'file', 'input_file', 'input_audio', 'audio']);

export function parseAiRequestBody(api: AiApi, body: Uint8Array): ParsedAiRequest {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  if (text.trim().length === 0) return problem('not_json', 'request body is empty; expected a JSON object');
  let json: unknown;
  try {
    json = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    return problem('not_json', `request body is not valid JSON: ${syntaxErrorMessage(error, text)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return problem('not_object', `request body must be a JSON object (got ${describe(json)})`);
  const fields = json as Record<string, unknown>;

  const rawModel = fields.model;
  if (rawModel === undefined || rawModel === null) return problem('model_missing', 'request body field "model" is missing');
  if (typeof rawModel !== 'string') return problem('model_not_string', `request body field "model" must be a string (got ${describe(rawModel)})`);
  const model = rawModel.trim();
  if (model.length === 0) return problem('model_missing', 'request body field "model" is empty');
  if (model.length > MAX_MODEL_LENGTH) return problem('bad_field', `request body field "model" is too long (${model.length} characters; at most ${MAX_MODEL_LENGTH})`);

  const stream = optionalBoolean(fields, 'stream');
  if (stream.problem) return stream.problem;

  let outputCap: number | undefined;
  let n = 1;
  let needsIncludeUsage = false;
  switch (api) {
    case 'openai.chat': {
      const completionCap = optionalPositiveInteger(fields, 'max_completion_tokens');
      if (completionCap.problem) return completionCap.problem;
      const legacyCap = optionalPositiveInteger(fields, 'max_tokens');
      if (legacyCap.problem) return legacyCap.problem;
      outputCap = completionCap.value ?? legacyCap.value;
      const choices = optionalPositiveInteger(fields, 'n');
      if (choices.problem) return choices.problem;
      n = choices.value ?? 1;
      const streamOptions = fields.stream_options;
      let includeUsage = false;
      if (streamOptions !== undefined && streamOptions !== null) {
        if (typeof streamOptions !== 'object' || Array.isArray(streamOptions)) return problem('bad_field', `request body field "stream_options" must be an object (got ${describe(streamOptions)})`);
        const flag = optionalBoolean(streamOptions as Record<string, unknown>, 'include_usage', 'stream_options.include_usage');
        if (flag.problem) return flag.problem;
        includeUsage = flag.value === true;
      }
      needsIncludeUsage = stream.value === true && !includeUsage;
      break;
    }
    case 'openai.responses': {
      const cap = optionalPositiveInteger(fields, 'max_output_tokens');
      if (cap.problem) return cap.problem;
      outputCap = cap.value;
      break;
    }
    case 'anthropic.messages': {
      // Anthropic requires max_tokens; the provider itself refuses a body without it, so it is not refused here.
      const cap = optionalPositiveInteger(fields, 'max_tokens');
      if (cap.problem) return cap.problem;
      outputCap = cap.value;
      break;
    }
    case 'openai.embeddings':
      break;
  }

  const request: AiRequest = {
    api,
    model,
    stream: api === 'openai.embeddings' ? false : stream.value === true,
    outputCap,
    n,
    inputEstimateTokens: Math.max(1, Math.ceil(inputChars(api, fields) / CHARS_PER_TOKEN)),
    needsIncludeUsage,
  };
  const bound = readRequestBound(api, fields);
  if (hasBoundExtras(bound)) return { ok: true, request: { ...request, bound }, json: fields };
  return { ok: true, request, json: fields };
}

/** Changes to the forwarded body. */
export interface RequestBodyChanges {
  readonly includeUsage?: boolean;
  readonly model?: string;
  readonly outputCap?: number;
}

/**
 * Returns the new body bytes (JSON.stringify of the patched object; the original key order kept, new keys appended).
 * - includeUsage (openai.chat only): `stream_options.include_usage = true`, other stream_options keys kept.
 * - outputCap, set as given: chat → max_completion_tokens when the body used it (and max_tokens too when it used
 *   both), else max_tokens; responses → max_output_tokens; anthropic → max_tokens; embeddings: none.
 * Numbers beyond 2^53 in the original body lose precision through JSON.parse/stringify (no real request field has them).
 */
export function rewriteAiRequestBody(api: AiApi, json: Record<string, unknown>, changes: RequestBodyChanges): Buffer {
  const patched: Record<string, unknown> = { ...json };
  if (changes.model !== undefined) patched.model = changes.model;
  if (changes.includeUsage === true && api === 'openai.chat') {
    const streamOptions = json.stream_options;
    const kept = typeof streamOptions === 'object' && streamOptions !== null && !Array.isArray(streamOptions) ? (streamOptions as Record<string, unknown>) : {};
    patched.stream_options = { ...kept, include_usage: true };
  }
  if (changes.outputCap !== undefined) {
    switch (api) {
      case 'openai.chat': {
        // max_completion_tokens is what every current chat model takes (reasoning models refuse
        // max_tokens); a body that used max_tokens keeps it, changed.
        const usesLegacy = isPresent(json.max_tokens);
        if (usesLegacy) patched.max_tokens = changes.outputCap;
        if (!usesLegacy || isPresent(json.max_completion_tokens)) patched.max_completion_tokens = changes.outputCap;
        break;
      }
      case 'openai.responses':
        patched.max_output_tokens = changes.outputCap;
        break;
      case 'anthropic.messages':
        patched.max_tokens = changes.outputCap;
        break;
      case 'openai.embeddings':
        break;
    }
  }
  return Buffer.from(JSON.stringify(patched), 'utf8');
}

function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function problem(code: BodyProblemCode, message: string): { readonly ok: false; readonly problem: BodyProblem } {
  return { ok: false, problem: { code, message } };
}

type Field<T> = { readonly value: T | undefined; readonly problem?: undefined } | { readonly value?: undefined; readonly problem: { readonly ok: false; readonly problem: BodyProblem } };

/** null counts as absent: the OpenAI schemas declare these fields nullable. */
function optionalBoolean(fields: Record<string, unknown>, key: string, name = key): Field<boolean> {
  const value = fields[key];
  if (value === undefined || value === null) return { value: undefined };
  if (typeof value !== 'boolean') return { problem: problem('bad_field', `request body field "${name}" must be a boolean (got ${describe(value)})`) };
  return { value };
}

function optionalPositiveInteger(fields: Record<string, unknown>, key: string): Field<number> {
  const value = fields[key];
  if (value === undefined || value === null) return { value: undefined };
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) return { problem: problem('bad_field', `request body field "${key}" must be a positive integer (got ${describe(value)})`) };
  return { value };
}

/** Numbers are shown (`-1`), strings quoted and cut, other values by their JSON type. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value;
}

function syntaxErrorMessage(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const position = /at position (\d+)/.exec(message);
  const atEnd = position !== null && Number(position[1]) >= text.trimEnd().length - 1;
  const truncated = /end of JSON input|Unterminated string/i.test(message) || atEnd;
  return truncated ? `${message} (truncated?)` : message;
}

// ---------------------------------------------------------------------------------------------
// The input estimate: characters of the text the model reads.

function inputChars(api: AiApi, fields: Record<string, unknown>): number {
  switch (api) {
    case 'openai.chat':
      return walk(fields.messages, 0, false) + walk(fields.tools, 0, false) + walk(fields.functions, 0, false);
    case 'openai.responses':
      return walk(fields.input, 0, false) + walk(fields.instructions, 0, false) + walk(fields.tools, 0, false);
    case 'openai.embeddings':
      // input may be token ids (an array of integers, or of arrays): one token each.
      return walk(fields.input, 0, true);
    case 'anthropic.messages':
      return walk(fields.messages, 0, false) + walk(fields.system, 0, false) + walk(fields.tools, 0, false);
  }
}

/** Sums the lengths of strings and object keys (tool schemas are mostly keys); an attachment part counts a fixed amount. */
function walk(value: unknown, depth: number, numbersAreTokens: boolean): number {
  if (typeof value === 'string') return attachmentLike(value) ? ATTACHMENT_CHARS : value.length;
  if (typeof value === 'number') return numbersAreTokens ? CHARS_PER_TOKEN : 0;
  if (typeof value !== 'object' || value === null || depth >= MAX_WALK_DEPTH) return 0;
  let chars = 0;
  if (Array.isArray(value)) {
    for (const item of value) chars += walk(item, depth + 1, numbersAreTokens);
    return chars;
  }
  const record = value as Record<string, unknown>;
  if (typeof record.type === 'string' && ATTACHMENT_TYPES.has(record.type)) return ATTACHMENT_CHARS;
  for (const key in record) {
    if (key === 'type' || key === 'role' || key === 'cache_control' || key === 'id' || key === 'tool_call_id' || key === 'tool_use_id') continue;
    chars += key.length + walk(record[key], depth + 1, numbersAreTokens);
  }
  return chars;
}

/** A data URL (a base64 image or file inline) is not text: counting its characters would overstate it by far. */
function attachmentLike(text: string): boolean {
  return text.length > 256 && text.startsWith('data:');
}
