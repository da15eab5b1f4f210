/**
 * AI request bodies: what the policy needs from them (model, stream, output cap, n, a rough
 * input size), validated with messages that name the field, and the forwarded body's rewrite
 * (include_usage on, a model or an output cap replaced). The body is decoded and parsed once.
 */
import { canonicalModelId } from './model-pattern.js';
import { FORMAT_OF, PROVIDER_OF, isFreeApi, type AiApi, type AiRoute, type WireFormat } from './ai-api.js';
import { hasBoundExtras, readRequestBound, type RequestBound } from './request-bound.js';

export interface AiRequest {
  readonly api: AiApi;
  /** As sent, trimmed; NOT lowercased (the caller normalises). */
  readonly model: string;
  readonly stream: boolean;
  /** max_tokens | max_completion_tokens (chat: the larger when both are sent) | max_output_tokens (responses); undefined for embeddings. */
  readonly outputCap: number | undefined;
  /** chat `n`, default 1; 1 for the others. */
  readonly n: number;
  /** Rough: text characters of messages/input/system/instructions/tools ÷ 4, rounded up, ≥ 1; images etc. counted roughly. */
  readonly inputEstimateTokens: number;
  /** openai.chat / completions with stream:true and without stream_options.include_usage:true. */
  readonly needsIncludeUsage: boolean;
  /** What the request can be billed for beyond its body's text (request-bound.ts); absent = nothing. */
  readonly bound?: RequestBound | undefined;
  /**
   * Every model the request names, when it names more than its `model` (a batch: each request's
   * model, distinct; a path that names one model and a body that names another: both). Empty when the models cannot be read (OpenAI Batch: they are inside an
   * uploaded file; `model` is then empty too). Undefined means just `model`.
   */
  readonly models?: readonly string[] | undefined;
  /** The model came from the path (Gemini, Bedrock, an Azure deployment): a body rewrite cannot change it. */
  readonly modelInPath?: boolean | undefined;
  /**
   * The provider bills this request later, outside this exchange (a batch, a background response):
   * nothing can be reserved for it and its response carries no usage.
   */
  readonly deferred?: 'batch' | 'background' | undefined;
  /** The client signed the body (AWS SigV4): the service cannot change it (no cap, model or include_usage set). */
  readonly signedBody?: boolean | undefined;
  /** A token count (isFreeApi): no output and no charge, so nothing is reserved, charged or recorded. */
  readonly free?: boolean | undefined;
}

/** The body field that carries the output cap, as a client would write it. */
export function outputCapField(api: AiApi): string {
  switch (FORMAT_OF[api]) {
    case 'openai.chat':
      return 'max_completion_tokens';
    case 'openai.responses':
      return 'max_output_tokens';
    case 'gemini':
      return 'generationConfig.maxOutputTokens';
    case 'bedrock.converse':
      return 'inferenceConfig.maxTokens';
    default:
      return 'max_tokens';
  }
}

/** A budget downgrade can send the request to another model by rewriting the body's `model`. */
export function canChangeModel(request: Pick<AiRequest, 'api' | 'modelInPath' | 'deferred' | 'signedBody'>): boolean {
  // Azure's body model, where it has one, names a deployment, not a model.
  return request.modelInPath !== true && request.deferred === undefined && request.signedBody !== true && PROVIDER_OF[request.api] !== 'azure';
}

/** Every model a request names (see AiRequest.models). */
export function modelsOf(request: Pick<AiRequest, 'model' | 'models'>): readonly string[] {
  return request.models ?? [request.model];
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
const ATTACHMENT_KEYS: ReadonlySet<string> = new Set(['inlineData', 'inline_data', 'fileData', 'file_data', 'image', 'document', 'video']);

/**
 * `route` carries what the path said: for Gemini and Bedrock the model is the path's (the body names
 * none); for an Azure deployment the caller passes the model the deployment serves. A body `model`
 * is then ignored, as the provider ignores it.
 */
export function parseAiRequestBody(api: AiApi, body: Uint8Array, route?: Pick<AiRoute, 'pathModel'>): ParsedAiRequest {
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

  const format = FORMAT_OF[api];
  const pathModel = route?.pathModel?.trim();
  let pathAndBodyModels: readonly string[] | undefined;
  let model: string;
  if (pathModel !== undefined) {
    if (pathModel.length === 0) return problem('model_missing', 'the model in the request path is empty');
    if (pathModel.length > MAX_MODEL_LENGTH) return problem('bad_field', `the model in the request path is too long (${pathModel.length} characters; at most ${MAX_MODEL_LENGTH})`);
    model = pathModel;
    // The path's model is the one served; a body naming another may be read by some upstream
    // (Google's transcoding binds a body `model` too), so both are checked, as a batch's models are.
    // Azure's body model names a deployment: not a model.
    if (PROVIDER_OF[api] !== 'azure' && fields.model !== undefined && fields.model !== null) {
      const named = modelField(fields.model, 'model');
      if (!named.ok) return named;
      if (!sameModel(named.model, pathModel)) pathAndBodyModels = [pathModel, named.model];
    }
  } else if (format === 'openai.batches' || format === 'anthropic.batches') {
    model = '';
  } else {
    const named = modelField(fields.model, 'model');
    if (!named.ok) return named;
    model = named.model;
  }

  const stream = optionalBoolean(fields, 'stream');
  if (stream.problem) return stream.problem;

  let outputCap: number | undefined;
  let n = 1;
  let needsIncludeUsage = false;
  let models: readonly string[] | undefined = pathAndBodyModels;
  let deferred: AiRequest['deferred'];
  let streams = stream.value === true;
  switch (format) {
    case 'openai.chat': {
      const completionCap = optionalPositiveInteger(fields, 'max_completion_tokens');
      if (completionCap.problem) return completionCap.problem;
      const legacyCap = optionalPositiveInteger(fields, 'max_tokens');
      if (legacyCap.problem) return legacyCap.problem;
      // Both sent: providers differ on which one counts (OpenAI takes max_completion_tokens, servers
      // such as Ollama only max_tokens), so the bound is the larger; a budget's cap rewrites both.
      outputCap = completionCap.value === undefined || legacyCap.value === undefined ? (completionCap.value ?? legacyCap.value) : Math.max(completionCap.value, legacyCap.value);
      const choices = optionalPositiveInteger(fields, 'n');
      if (choices.problem) return choices.problem;
      n = choices.value ?? 1;
      const includeUsage = streamIncludeUsage(fields);
      if (!includeUsage.ok) return includeUsage;
      needsIncludeUsage = stream.value === true && !includeUsage.value;
      break;
    }
    case 'openai.responses': {
      const cap = optionalPositiveInteger(fields, 'max_output_tokens');
      if (cap.problem) return cap.problem;
      outputCap = cap.value;
      const background = optionalBoolean(fields, 'background');
      if (background.problem) return background.problem;
      if (background.value === true) deferred = 'background';
      break;
    }
    case 'openai.completions': {
      const cap = optionalPositiveInteger(fields, 'max_tokens');
      if (cap.problem) return cap.problem;
      // Legacy Completions default to 16 tokens when max_tokens is absent.
      outputCap = cap.value ?? 16;
      const choices = optionalPositiveInteger(fields, 'n');
      if (choices.problem) return choices.problem;
      const bestOf = optionalPositiveInteger(fields, 'best_of');
      if (bestOf.problem) return bestOf.problem;
      // best_of completions are generated (and billed) server-side; n of them are returned.
      n = Math.max(choices.value ?? 1, bestOf.value ?? 1);
      const includeUsage = streamIncludeUsage(fields);
      if (!includeUsage.ok) return includeUsage;
      needsIncludeUsage = stream.value === true && !includeUsage.value;
      break;
    }
    case 'gemini': {
      streams = api === 'gemini.stream';
      // Google's JSON takes a field by its proto name too (generation_config.max_output_tokens,
      // candidate_count): both spellings are read, and one field in both is malformed.
      const configKey = protoSpelling(fields, 'generationConfig', 'generation_config');
      if (typeof configKey !== 'string') return configKey;
      const config = optionalObject(fields, configKey);
      if (config.problem) return config.problem;
      if (config.value !== undefined) {
        const capKey = protoSpelling(config.value, 'maxOutputTokens', 'max_output_tokens', configKey);
        if (typeof capKey !== 'string') return capKey;
        const cap = optionalPositiveInteger(config.value, capKey, `${configKey}.${capKey}`);
        if (cap.problem) return cap.problem;
        outputCap = cap.value;
        const countKey = protoSpelling(config.value, 'candidateCount', 'candidate_count', configKey);
        if (typeof countKey !== 'string') return countKey;
        const candidates = optionalPositiveInteger(config.value, countKey, `${configKey}.${countKey}`);
        if (candidates.problem) return candidates.problem;
        n = candidates.value ?? 1;
      }
      break;
    }
    case 'bedrock.converse': {
      streams = api === 'bedrock.converse-stream';
      const config = optionalObject(fields, 'inferenceConfig');
      if (config.problem) return config.problem;
      if (config.value !== undefined) {
        const cap = optionalPositiveInteger(config.value, 'maxTokens', 'inferenceConfig.maxTokens');
        if (cap.problem) return cap.problem;
        outputCap = cap.value;
      }
      break;
    }
    case 'bedrock.invoke': {
      // InvokeModel takes each model provider's own body; only Claude's (Anthropic Messages) is read.
      if (!canonicalModelId(model).startsWith('claude')) {
        return problem('bad_field', `Bedrock InvokeModel is read for Anthropic Claude models only, not ${model}: call it through Converse (/model/{model}/converse), whose body every model shares`);
      }
      streams = api === 'bedrock.invoke-stream';
      const cap = optionalPositiveInteger(fields, 'max_tokens');
      if (cap.problem) return cap.problem;
      outputCap = cap.value;
      break;
    }
    case 'anthropic.batches': {
      const read = anthropicBatchModels(fields.requests);
      if (!read.ok) return read;
      models = read.models;
      model = read.models[0]!;
      deferred = 'batch';
      streams = false;
      break;
    }
    case 'openai.batches': {
      if (typeof fields.input_file_id !== 'string' || fields.input_file_id.length === 0) return problem('bad_field', `request body field "input_file_id" must be a file id (got ${describe(fields.input_file_id)})`);
      models = [];
      deferred = 'batch';
      streams = false;
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

  const free = isFreeApi(api);
  const request: AiRequest = {
    api,
    model,
    stream: format === 'openai.embeddings' || free ? false : streams,
    outputCap: free ? undefined : outputCap,
    n: free ? 1 : n,
    inputEstimateTokens: Math.max(1, Math.ceil(inputChars(format, fields) / CHARS_PER_TOKEN)),
    needsIncludeUsage,
    ...(models !== undefined ? { models } : {}),
    ...(pathModel !== undefined ? { modelInPath: true } : {}),
    ...(deferred !== undefined && !free ? { deferred } : {}),
    ...(free ? { free: true } : {}),
  };
  const bound = readRequestBound(api, fields, text);
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
  const format = FORMAT_OF[api];
  const patched: Record<string, unknown> = { ...json };
  // A model named by the path (Gemini, Bedrock, Azure deployments) is not the body's to change.
  if (changes.model !== undefined && format !== 'gemini' && format !== 'bedrock.converse' && format !== 'bedrock.invoke') patched.model = changes.model;
  if (changes.includeUsage === true && (format === 'openai.chat' || format === 'openai.completions')) {
    const streamOptions = json.stream_options;
    const kept = typeof streamOptions === 'object' && streamOptions !== null && !Array.isArray(streamOptions) ? (streamOptions as Record<string, unknown>) : {};
    patched.stream_options = { ...kept, include_usage: true };
  }
  if (changes.outputCap !== undefined) {
    switch (format) {
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
      case 'openai.completions':
      case 'bedrock.invoke':
        patched.max_tokens = changes.outputCap;
        break;
      case 'gemini': {
        // In the spelling the body used (the reader refused both at once).
        const configKey = isPresent(json.generation_config) ? 'generation_config' : 'generationConfig';
        const config = objectOr(json[configKey]);
        patched[configKey] = { ...config, [isPresent(config.max_output_tokens) ? 'max_output_tokens' : 'maxOutputTokens']: changes.outputCap };
        break;
      }
      case 'bedrock.converse':
        patched.inferenceConfig = { ...objectOr(json.inferenceConfig), maxTokens: changes.outputCap };
        break;
      case 'openai.embeddings':
      case 'openai.batches':
      case 'anthropic.batches':
        break;
    }
  }
  return Buffer.from(JSON.stringify(patched), 'utf8');
}

function objectOr(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

type Problem = { readonly ok: false; readonly problem: BodyProblem };

function modelField(value: unknown, name: string): { readonly ok: true; readonly model: string } | Problem {
  if (value === undefined || value === null) return problem('model_missing', `request body field "${name}" is missing`);
  if (typeof value !== 'string') return problem('model_not_string', `request body field "${name}" must be a string (got ${describe(value)})`);
  const model = value.trim();
  if (model.length === 0) return problem('model_missing', `request body field "${name}" is empty`);
  if (model.length > MAX_MODEL_LENGTH) return problem('bad_field', `request body field "${name}" is too long (${model.length} characters; at most ${MAX_MODEL_LENGTH})`);
  return { ok: true, model };
}

/** Most requests one Message Batch may hold (Anthropic's own limit is 100,000). */
const MAX_BATCH_REQUESTS = 100_000;

/** Every `requests[].params.model` of an Anthropic Message Batch, distinct, in order of appearance. */
function anthropicBatchModels(requests: unknown): { readonly ok: true; readonly models: readonly string[] } | Problem {
  if (!Array.isArray(requests) || requests.length === 0) return problem('bad_field', `request body field "requests" must be a non-empty array (got ${describe(requests)})`);
  if (requests.length > MAX_BATCH_REQUESTS) return problem('bad_field', `request body field "requests" holds ${requests.length} requests; at most ${MAX_BATCH_REQUESTS}`);
  const models = new Set<string>();
  for (const [index, entry] of requests.entries()) {
    const params = typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? (entry as Record<string, unknown>).params : undefined;
    if (typeof params !== 'object' || params === null || Array.isArray(params)) return problem('bad_field', `request body field "requests[${index}].params" must be an object (got ${describe(params)})`);
    const named = modelField((params as Record<string, unknown>).model, `requests[${index}].params.model`);
    if (!named.ok) return named;
    models.add(named.model);
  }
  return { ok: true, models: [...models] };
}

/** stream_options.include_usage (OpenAI Chat and legacy Completions). */
function streamIncludeUsage(fields: Record<string, unknown>): { readonly ok: true; readonly value: boolean } | Problem {
  const streamOptions = fields.stream_options;
  if (streamOptions === undefined || streamOptions === null) return { ok: true, value: false };
  if (typeof streamOptions !== 'object' || Array.isArray(streamOptions)) return problem('bad_field', `request body field "stream_options" must be an object (got ${describe(streamOptions)})`);
  const flag = optionalBoolean(streamOptions as Record<string, unknown>, 'include_usage', 'stream_options.include_usage');
  if (flag.problem) return flag.problem;
  return { ok: true, value: flag.value === true };
}

/** The same model to every reader: case, Gemini's `models/` prefix and Bedrock/Vertex wrappings aside. */
function sameModel(a: string, b: string): boolean {
  const plain = (model: string) => canonicalModelId(model.trim().replace(/^(?:models|publishers\/[^/]+\/models)\//i, ''));
  return plain(a) === plain(b);
}

/** Which of a Google field's two JSON spellings the body uses (the camelCase one when neither); both is malformed. */
function protoSpelling(fields: Record<string, unknown>, camel: string, snake: string, at?: string): string | Problem {
  if (!isPresent(fields[snake])) return camel;
  if (isPresent(fields[camel])) return problem('bad_field', `request body names ${at === undefined ? '' : `"${at}" `}field "${camel}" twice, also as "${snake}": Google reads both spellings as one field`);
  return snake;
}

function optionalObject(fields: Record<string, unknown>, key: string): Field<Record<string, unknown>> {
  const value = fields[key];
  if (value === undefined || value === null) return { value: undefined };
  if (typeof value !== 'object' || Array.isArray(value)) return { problem: problem('bad_field', `request body field "${key}" must be an object (got ${describe(value)})`) };
  return { value: value as Record<string, unknown> };
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

function optionalPositiveInteger(fields: Record<string, unknown>, key: string, name = key): Field<number> {
  const value = fields[key];
  if (value === undefined || value === null) return { value: undefined };
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) return { problem: problem('bad_field', `request body field "${name}" must be a positive integer (got ${describe(value)})`) };
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

function inputChars(format: WireFormat, fields: Record<string, unknown>): number {
  switch (format) {
    case 'openai.chat':
      return walk(fields.messages, 0, false) + walk(fields.tools, 0, false) + walk(fields.functions, 0, false);
    case 'openai.responses':
      return walk(fields.input, 0, false) + walk(fields.instructions, 0, false) + walk(fields.tools, 0, false);
    case 'openai.embeddings':
      // input may be token ids (an array of integers, or of arrays): one token each.
      return walk(fields.input, 0, true);
    case 'anthropic.messages':
    case 'bedrock.invoke':
      return walk(fields.messages, 0, false) + walk(fields.system, 0, false) + walk(fields.tools, 0, false);
    case 'openai.completions':
      // prompt: a string, strings, token ids or arrays of token ids.
      return walk(fields.prompt, 0, true) + walk(fields.suffix, 0, false);
    case 'gemini':
      // Media parts are keys here (inlineData, fileData), not typed blocks; tools are outside the contents.
      return walk(fields.contents, 0, false, true) + walk(fields.systemInstruction ?? fields.system_instruction, 0, false) + walk(fields.tools, 0, false);
    case 'bedrock.converse':
      return walk(fields.messages, 0, false, true) + walk(fields.system, 0, false) + walk(fields.toolConfig, 0, false);
    case 'anthropic.batches':
      return walk(fields.requests, 0, false);
    case 'openai.batches':
      return 0;
  }
}

/** Sums the lengths of strings and object keys (tool schemas are mostly keys); an attachment part counts a fixed amount. */
function walk(value: unknown, depth: number, numbersAreTokens: boolean, mediaKeys = false): number {
  if (typeof value === 'string') return attachmentLike(value) ? ATTACHMENT_CHARS : value.length;
  if (typeof value === 'number') return numbersAreTokens ? CHARS_PER_TOKEN : 0;
  if (typeof value !== 'object' || value === null || depth >= MAX_WALK_DEPTH) return 0;
  let chars = 0;
  if (Array.isArray(value)) {
    for (const item of value) chars += walk(item, depth + 1, numbersAreTokens, mediaKeys);
    return chars;
  }
  const record = value as Record<string, unknown>;
  if (typeof record.type === 'string' && ATTACHMENT_TYPES.has(record.type)) return ATTACHMENT_CHARS;
  for (const key in record) {
    if (key === 'type' || key === 'role' || key === 'cache_control' || key === 'id' || key === 'tool_call_id' || key === 'tool_use_id') continue;
    // Gemini's inlineData / fileData parts and Bedrock's image, document and video blocks.
    if (mediaKeys && ATTACHMENT_KEYS.has(key) && typeof record[key] === 'object') {
      chars += ATTACHMENT_CHARS;
      continue;
    }
    chars += key.length + walk(record[key], depth + 1, numbersAreTokens, mediaKeys);
  }
  return chars;
}

/** A data URL (a base64 image or file inline) is not text: counting its characters would overstate it by far. */
function attachmentLike(text: string): boolean {
  return text.length > 256 && text.startsWith('data:');
}
