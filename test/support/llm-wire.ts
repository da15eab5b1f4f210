/**
 * Provider wire formats with known usage, for unit tests and the stub LLM.
 *
 * Shapes follow the providers' published API references: OpenAI Chat Completions
 * (object and streaming chunks, the usage chunk only with stream_options.include_usage,
 * `data: [DONE]`), the OpenAI Responses API (semantic `event:` SSE ending in
 * response.completed / response.incomplete / response.failed; no [DONE]), OpenAI
 * Embeddings, and Anthropic Messages (JSON, and SSE: message_start, content_block_*,
 * ping, message_delta with cumulative usage, message_stop).
 *
 * Usage is given in the service's own terms ({@link TokenUsage}: input includes cached
 * and cache-written tokens, output includes reasoning) and encoded the way each provider
 * reports it, so a test can expect exactly the usage it passed in.
 */
import { crc32 } from 'node:zlib';
import type { TokenUsage } from '../../src/usage/token-usage.js';

export type { TokenUsage };

/** Fills the optional token types with 0. */
export function tokenUsage(usage: Partial<TokenUsage> & { readonly input: number; readonly output: number }): TokenUsage {
  return { cachedInput: 0, cacheWrite: 0, reasoning: 0, ...usage };
}

export interface CompletionFixture {
  readonly model: string;
  readonly usage: TokenUsage;
  /** The generated text, streamed as {@link CompletionFixture.deltas} when given, else in pieces of about 8 characters. */
  readonly text?: string;
  readonly deltas?: readonly string[];
  readonly id?: string;
  /** Unix seconds. */
  readonly created?: number;
}

export const DEFAULT_TEXT = 'The capital of France is Paris. Zürich is in Switzerland — 日本 is Japan. 👋';
const DEFAULT_CREATED = 1_764_547_200;

function deltasOf(fixture: CompletionFixture): readonly string[] {
  if (fixture.deltas) return fixture.deltas;
  return splitText(fixture.text ?? DEFAULT_TEXT, 8);
}

/** Splits text into pieces of `size` code points (never inside a surrogate pair). */
export function splitText(text: string, size: number): string[] {
  const points = Array.from(text);
  const pieces: string[] = [];
  for (let start = 0; start < points.length; start += size) pieces.push(points.slice(start, start + size).join(''));
  return pieces;
}

function sseData(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

function sseEvent(event: string, payload: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`;
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions

export function openAiChatUsage(usage: TokenUsage): Record<string, unknown> {
  return {
    prompt_tokens: usage.input,
    completion_tokens: usage.output,
    total_tokens: usage.input + usage.output,
    prompt_tokens_details: { cached_tokens: usage.cachedInput, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: usage.reasoning, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

export function openAiChatJson(fixture: CompletionFixture & { readonly n?: number }): string {
  const text = fixture.text ?? deltasOf(fixture).join('');
  const choices = Array.from({ length: fixture.n ?? 1 }, (_, index) => ({
    index,
    message: { role: 'assistant', content: text, refusal: null, annotations: [] },
    logprobs: null,
    finish_reason: 'stop',
  }));
  return JSON.stringify({
    id: fixture.id ?? 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion',
    created: fixture.created ?? DEFAULT_CREATED,
    model: fixture.model,
    choices,
    usage: openAiChatUsage(fixture.usage),
    service_tier: 'default',
    system_fingerprint: 'fp_07871e2ad8',
  });
}

export interface OpenAiChatSseOptions extends CompletionFixture {
  /** Send the final usage chunk (the client asked stream_options.include_usage). */
  readonly includeUsage: boolean;
  /** Stop before the usage chunk and [DONE] (a stream cut short). */
  readonly truncateAfterDeltas?: boolean;
}

export function openAiChatSse(options: OpenAiChatSseOptions): string {
  const base = { id: options.id ?? 'chatcmpl-C3d2aXw1pRn9', object: 'chat.completion.chunk', created: options.created ?? DEFAULT_CREATED, model: options.model, service_tier: 'default', system_fingerprint: 'fp_07871e2ad8' };
  const usageField = options.includeUsage ? { usage: null } : {};
  let body = sseData({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], ...usageField });
  for (const delta of deltasOf(options)) {
    body += sseData({ ...base, choices: [{ index: 0, delta: { content: delta }, logprobs: null, finish_reason: null }], ...usageField });
  }
  if (options.truncateAfterDeltas) return body;
  body += sseData({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], ...usageField });
  if (options.includeUsage) body += sseData({ ...base, choices: [], usage: openAiChatUsage(options.usage) });
  return `${body}data: [DONE]\n\n`;
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses

export function openAiResponsesUsage(usage: TokenUsage): Record<string, unknown> {
  return {
    input_tokens: usage.input,
    input_tokens_details: { cached_tokens: usage.cachedInput },
    output_tokens: usage.output,
    output_tokens_details: { reasoning_tokens: usage.reasoning },
    total_tokens: usage.input + usage.output,
  };
}

export type ResponsesOutcome = 'completed' | 'incomplete' | 'failed';

function responseObject(fixture: CompletionFixture, status: 'in_progress' | ResponsesOutcome, text: string | undefined): Record<string, unknown> {
  const done = status !== 'in_progress';
  return {
    id: fixture.id ?? 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b',
    object: 'response',
    created_at: fixture.created ?? DEFAULT_CREATED,
    status,
    error: status === 'failed' ? { code: 'server_error', message: 'The model failed to generate a response.' } : null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: null,
    max_output_tokens: null,
    model: fixture.model,
    output:
      done && text !== undefined
        ? [
            {
              type: 'message',
              id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b',
              status: status === 'completed' ? 'completed' : 'incomplete',
              role: 'assistant',
              content: [{ type: 'output_text', text, annotations: [] }],
            },
          ]
        : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: 1.0,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1.0,
    truncation: 'disabled',
    usage: done ? openAiResponsesUsage(fixture.usage) : null,
    user: null,
    metadata: {},
  };
}

export function openAiResponsesJson(fixture: CompletionFixture & { readonly outcome?: ResponsesOutcome }): string {
  return JSON.stringify(responseObject(fixture, fixture.outcome ?? 'completed', fixture.text ?? deltasOf(fixture).join('')));
}

export interface OpenAiResponsesSseOptions extends CompletionFixture {
  readonly outcome?: ResponsesOutcome;
  /** Stop after the text deltas: no terminal event (a stream cut short). */
  readonly truncateAfterDeltas?: boolean;
}

export function openAiResponsesSse(options: OpenAiResponsesSseOptions): string {
  const outcome = options.outcome ?? 'completed';
  const itemId = 'msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b';
  let sequence = 0;
  const emit = (type: string, fields: Record<string, unknown>) => sseEvent(type, { type, sequence_number: sequence++, ...fields });
  const deltas = deltasOf(options);
  const text = deltas.join('');
  let body = emit('response.created', { response: responseObject(options, 'in_progress', undefined) });
  body += emit('response.in_progress', { response: responseObject(options, 'in_progress', undefined) });
  body += emit('response.output_item.added', { output_index: 0, item: { id: itemId, type: 'message', status: 'in_progress', content: [], role: 'assistant' } });
  body += emit('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', annotations: [], text: '' } });
  for (const delta of deltas) body += emit('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta, logprobs: [] });
  if (options.truncateAfterDeltas) return body;
  body += emit('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] });
  body += emit('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', annotations: [], text } });
  body += emit('response.output_item.done', { output_index: 0, item: { id: itemId, type: 'message', status: outcome === 'completed' ? 'completed' : 'incomplete', content: [{ type: 'output_text', annotations: [], text }], role: 'assistant' } });
  body += emit(`response.${outcome}`, { response: responseObject(options, outcome, text) });
  return body;
}

// ---------------------------------------------------------------------------------------------
// OpenAI Embeddings

export interface EmbeddingsFixture {
  readonly model: string;
  /** Prompt tokens (embeddings bill input only). */
  readonly inputTokens: number;
  readonly vectors?: number;
  readonly dimensions?: number;
}

export function openAiEmbeddingsJson(fixture: EmbeddingsFixture): string {
  const data = Array.from({ length: fixture.vectors ?? 2 }, (_, index) => ({ object: 'embedding', index, embedding: vector(index, fixture.dimensions ?? 8) }));
  return JSON.stringify({ object: 'list', data, model: fixture.model, usage: { prompt_tokens: fixture.inputTokens, total_tokens: fixture.inputTokens } });
}

function vector(seed: number, dimensions: number): number[] {
  return Array.from({ length: dimensions }, (_, index) => Number((Math.sin(seed * 31 + index) * 0.1).toFixed(9)));
}

/**
 * An embeddings response of about `targetBytes`, produced piece by piece (never held whole):
 * yields the JSON in chunks of about `chunkBytes`. The usage object comes after the data, as OpenAI sends it.
 */
export function* hugeEmbeddingsJson(fixture: EmbeddingsFixture & { readonly targetBytes: number; readonly chunkBytes?: number }): Generator<Buffer> {
  const dimensions = fixture.dimensions ?? 1536;
  const chunkBytes = fixture.chunkBytes ?? 64 * 1024;
  const vectors = Array.from({ length: 8 }, (_, seed) => JSON.stringify(vector(seed, dimensions)));
  let pending = '{"object":"list","data":[';
  let written = 0;
  let index = 0;
  while (written + pending.length < fixture.targetBytes) {
    pending += `${index === 0 ? '' : ','}{"object":"embedding","index":${index},"embedding":${vectors[index % vectors.length]}}`;
    index += 1;
    while (pending.length >= chunkBytes) {
      yield Buffer.from(pending.slice(0, chunkBytes), 'latin1');
      written += chunkBytes;
      pending = pending.slice(chunkBytes);
    }
  }
  pending += `],"model":${JSON.stringify(fixture.model)},"usage":{"prompt_tokens":${fixture.inputTokens},"total_tokens":${fixture.inputTokens}}}`;
  yield Buffer.from(pending, 'latin1');
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages

/** Anthropic's usage: input_tokens are the uncached ones; cache reads and writes are reported beside them. */
export function anthropicUsage(usage: TokenUsage): Record<string, unknown> {
  return {
    input_tokens: usage.input - usage.cachedInput - usage.cacheWrite,
    cache_creation_input_tokens: usage.cacheWrite,
    cache_read_input_tokens: usage.cachedInput,
    cache_creation: { ephemeral_5m_input_tokens: usage.cacheWrite - (usage.cacheWrite1h ?? 0), ephemeral_1h_input_tokens: usage.cacheWrite1h ?? 0 },
    output_tokens: usage.output,
    service_tier: 'standard',
    ...(usage.serverToolCalls ? { server_tool_use: Object.fromEntries(Object.entries(usage.serverToolCalls).map(([tool, calls]) => [`${tool}_requests`, calls])) } : {}),
  };
}

export function anthropicMessagesJson(fixture: CompletionFixture & { readonly thinking?: string }): string {
  const content: unknown[] = [];
  if (fixture.thinking !== undefined) content.push({ type: 'thinking', thinking: fixture.thinking, signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' });
  content.push({ type: 'text', text: fixture.text ?? deltasOf(fixture).join('') });
  return JSON.stringify({
    id: fixture.id ?? 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
    type: 'message',
    role: 'assistant',
    model: fixture.model,
    content,
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: anthropicUsage(fixture.usage),
  });
}

export interface AnthropicMessagesSseOptions extends CompletionFixture {
  /** Streamed first as a thinking block (thinking_delta events). */
  readonly thinking?: string;
  /** Send two message_delta events, the first with a partial output count (usage is cumulative). */
  readonly twoMessageDeltas?: boolean;
  /** The final message_delta repeats the input and cache counts (as the API does with server tools). */
  readonly deltaCarriesInput?: boolean;
  /** Stop after the text deltas: no message_delta, no message_stop (a stream cut short). */
  readonly truncateAfterDeltas?: boolean;
  /** Output tokens message_start reports (the API reports a small running count there). */
  readonly startOutputTokens?: number;
}

export function anthropicMessagesSse(options: AnthropicMessagesSseOptions): string {
  const usage = anthropicUsage(options.usage);
  const startUsage = { ...usage, output_tokens: options.startOutputTokens ?? 1 };
  let body = sseEvent('message_start', {
    type: 'message_start',
    message: { id: options.id ?? 'msg_01XFDUDYJgAACzvnptvVoYEL', type: 'message', role: 'assistant', model: options.model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage },
  });
  let index = 0;
  if (options.thinking !== undefined) {
    body += sseEvent('content_block_start', { type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } });
    for (const piece of splitText(options.thinking, 8)) body += sseEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: piece } });
    body += sseEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' } });
    body += sseEvent('content_block_stop', { type: 'content_block_stop', index });
    index += 1;
  }
  body += sseEvent('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
  body += sseEvent('ping', { type: 'ping' });
  for (const delta of deltasOf(options)) body += sseEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: delta } });
  if (options.truncateAfterDeltas) return body;
  body += sseEvent('content_block_stop', { type: 'content_block_stop', index });
  const inputFields = options.deltaCarriesInput
    ? { input_tokens: usage.input_tokens, cache_creation_input_tokens: usage.cache_creation_input_tokens, cache_read_input_tokens: usage.cache_read_input_tokens }
    : {};
  if (options.twoMessageDeltas) {
    body += sseEvent('message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: Math.floor(options.usage.output / 2) } });
  }
  body += sseEvent('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { ...inputFields, output_tokens: options.usage.output } });
  body += sseEvent('message_stop', { type: 'message_stop' });
  return body;
}

// ---------------------------------------------------------------------------------------------
// OpenAI legacy Completions (/v1/completions): choices[].text; streams end with a usage chunk
// (empty choices) only with stream_options.include_usage, then [DONE].

export function openAiCompletionsJson(fixture: CompletionFixture & { readonly n?: number }): string {
  const text = fixture.text ?? deltasOf(fixture).join('');
  return JSON.stringify({
    id: fixture.id ?? 'cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7',
    object: 'text_completion',
    created: fixture.created ?? DEFAULT_CREATED,
    model: fixture.model,
    system_fingerprint: 'fp_44709d6fcb',
    choices: Array.from({ length: fixture.n ?? 1 }, (_, index) => ({ text, index, logprobs: null, finish_reason: 'length' })),
    usage: { prompt_tokens: fixture.usage.input, completion_tokens: fixture.usage.output, total_tokens: fixture.usage.input + fixture.usage.output },
  });
}

export function openAiCompletionsSse(options: CompletionFixture & { readonly includeUsage: boolean }): string {
  const base = { id: options.id ?? 'cmpl-8mUvHpDWbjCrIvkYwV6pBXH3', object: 'text_completion', created: options.created ?? DEFAULT_CREATED, model: options.model, system_fingerprint: 'fp_44709d6fcb' };
  let body = '';
  for (const delta of deltasOf(options)) body += sseData({ ...base, choices: [{ text: delta, index: 0, logprobs: null, finish_reason: null }] });
  body += sseData({ ...base, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }] });
  if (options.includeUsage) body += sseData({ ...base, choices: [], usage: { prompt_tokens: options.usage.input, completion_tokens: options.usage.output, total_tokens: options.usage.input + options.usage.output } });
  return `${body}data: [DONE]\n\n`;
}

/** Azure OpenAI's first chat stream chunk: the prompt's content-filter results, no model, no choices. */
export function azurePromptFilterChunk(): string {
  return sseData({
    choices: [],
    created: 0,
    id: '',
    model: '',
    object: '',
    prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' }, sexual: { filtered: false, severity: 'safe' }, violence: { filtered: false, severity: 'safe' } } }],
  });
}

// ---------------------------------------------------------------------------------------------
// Google Gemini (generateContent, streamGenerateContent as SSE with alt=sse or as a JSON array).

/** usageMetadata: promptTokenCount includes the cached tokens; thoughts are reported beside the candidates. */
export function geminiUsage(usage: TokenUsage, toolUsePrompt = 0): Record<string, unknown> {
  const prompt = usage.input - toolUsePrompt;
  const candidates = usage.output - usage.reasoning;
  return {
    promptTokenCount: prompt,
    candidatesTokenCount: candidates,
    totalTokenCount: usage.input + usage.output,
    ...(usage.cachedInput > 0 ? { cachedContentTokenCount: usage.cachedInput } : {}),
    ...(toolUsePrompt > 0 ? { toolUsePromptTokenCount: toolUsePrompt } : {}),
    ...(usage.reasoning > 0 ? { thoughtsTokenCount: usage.reasoning } : {}),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }],
    ...(usage.cachedInput > 0 ? { cacheTokensDetails: [{ modality: 'TEXT', tokenCount: usage.cachedInput }] } : {}),
  };
}

function geminiChunk(model: string, text: string | undefined, finish: boolean, usageMetadata: Record<string, unknown>): Record<string, unknown> {
  return {
    candidates: [{ content: { parts: text !== undefined ? [{ text }] : [], role: 'model' }, ...(finish ? { finishReason: 'STOP' } : {}), index: 0 }],
    usageMetadata,
    modelVersion: model,
    responseId: 'mAitaJ2WBs2nz7IPpOOT-AQ',
  };
}

export function geminiJson(fixture: CompletionFixture & { readonly toolUsePrompt?: number }): string {
  return JSON.stringify(geminiChunk(fixture.model, fixture.text ?? deltasOf(fixture).join(''), true, geminiUsage(fixture.usage, fixture.toolUsePrompt)), null, 2);
}

export interface GeminiStreamOptions extends CompletionFixture {
  readonly toolUsePrompt?: number;
  /** Stop before the final chunk (the one with finishReason and the full usage). */
  readonly truncateAfterDeltas?: boolean;
}

/** The chunks of a stream: each repeats the usage so far (prompt counts, thoughts), the last one the whole usage. */
function geminiChunks(options: GeminiStreamOptions): Record<string, unknown>[] {
  const deltas = deltasOf(options);
  const running = { promptTokenCount: options.usage.input - (options.toolUsePrompt ?? 0), totalTokenCount: options.usage.input + options.usage.reasoning, ...(options.usage.reasoning > 0 ? { thoughtsTokenCount: options.usage.reasoning } : {}) };
  const chunks = deltas.slice(0, -1).map((delta) => geminiChunk(options.model, delta, false, running));
  if (!options.truncateAfterDeltas) chunks.push(geminiChunk(options.model, deltas.at(-1) ?? '', true, geminiUsage(options.usage, options.toolUsePrompt)));
  return chunks;
}

/** `alt=sse`: one `data:` event per chunk, separated by CRLF CRLF as Google sends them. */
export function geminiSse(options: GeminiStreamOptions): string {
  return geminiChunks(options).map((chunk) => `data: ${JSON.stringify(chunk)}\r\n\r\n`).join('');
}

/** Without alt=sse: one JSON array, its elements pretty-printed and streamed as they come. */
export function geminiJsonArray(options: GeminiStreamOptions): string {
  const elements = geminiChunks(options).map((chunk) => JSON.stringify(chunk, null, 2));
  return options.truncateAfterDeltas ? `[${elements.join('\n,\r\n')}` : `[${elements.join('\n,\r\n')}]`;
}

export function geminiErrorJson(status: number, message = 'Resource has been exhausted (e.g. check quota).'): string {
  const statusName = status === 429 ? 'RESOURCE_EXHAUSTED' : status === 400 ? 'INVALID_ARGUMENT' : status === 404 ? 'NOT_FOUND' : status === 503 ? 'UNAVAILABLE' : 'INTERNAL';
  return JSON.stringify({ error: { code: status, message, status: statusName } }, null, 2);
}

// ---------------------------------------------------------------------------------------------
// Amazon Bedrock Converse: JSON, and ConverseStream in the AWS event-stream binary framing.
// Encoded here by hand from the framing's specification (prelude, headers, payload, CRC32s),
// independently of the library the service decodes it with.

export function bedrockUsage(usage: TokenUsage): Record<string, unknown> {
  const input = usage.input - usage.cachedInput - usage.cacheWrite;
  return {
    inputTokens: input,
    outputTokens: usage.output,
    totalTokens: usage.input + usage.output,
    ...(usage.cachedInput > 0 || usage.cacheWrite > 0 ? { cacheReadInputTokens: usage.cachedInput, cacheWriteInputTokens: usage.cacheWrite } : {}),
  };
}

export function bedrockConverseJson(fixture: CompletionFixture): string {
  return JSON.stringify({
    metrics: { latencyMs: 1234 },
    output: { message: { content: [{ text: fixture.text ?? deltasOf(fixture).join('') }], role: 'assistant' } },
    stopReason: 'end_turn',
    usage: bedrockUsage(fixture.usage),
  });
}

/** One event-stream message: string headers only (all Bedrock sends). */
export function eventStreamMessage(headers: Readonly<Record<string, string>>, payload: Uint8Array): Buffer {
  const headerParts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const nameBytes = Buffer.from(name, 'utf8');
    const valueBytes = Buffer.from(value, 'utf8');
    const header = Buffer.alloc(1 + nameBytes.length + 1 + 2 + valueBytes.length);
    header.writeUInt8(nameBytes.length, 0);
    nameBytes.copy(header, 1);
    header.writeUInt8(7, 1 + nameBytes.length); // 7: string
    header.writeUInt16BE(valueBytes.length, 2 + nameBytes.length);
    valueBytes.copy(header, 4 + nameBytes.length);
    headerParts.push(header);
  }
  const headerBytes = Buffer.concat(headerParts);
  const total = 12 + headerBytes.length + payload.length + 4;
  const message = Buffer.alloc(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(headerBytes.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
  headerBytes.copy(message, 12);
  Buffer.from(payload).copy(message, 12 + headerBytes.length);
  message.writeUInt32BE(crc32(message.subarray(0, total - 4)), total - 4);
  return message;
}

function bedrockEvent(eventType: string, payload: Record<string, unknown>): Buffer {
  return eventStreamMessage({ ':event-type': eventType, ':content-type': 'application/json', ':message-type': 'event' }, Buffer.from(JSON.stringify(payload), 'utf8'));
}

/** Bedrock pads each event with a `p` field of varying length (against length side channels). */
function padding(index: number): string {
  return 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'.slice(0, 1 + ((index * 7) % 50));
}

export interface BedrockStreamOptions extends CompletionFixture {
  /** Stop after the deltas: no messageStop, no metadata. */
  readonly truncateAfterDeltas?: boolean;
  /** An exception message (e.g. throttlingException) after the deltas, in place of the end. */
  readonly exception?: string;
}

export function bedrockConverseStream(options: BedrockStreamOptions): Buffer {
  const parts: Buffer[] = [bedrockEvent('messageStart', { p: padding(0), role: 'assistant' })];
  deltasOf(options).forEach((text, index) => parts.push(bedrockEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text }, p: padding(index + 1) })));
  if (options.exception !== undefined) {
    parts.push(eventStreamMessage({ ':exception-type': options.exception, ':content-type': 'application/json', ':message-type': 'exception' }, Buffer.from(JSON.stringify({ message: 'Too many tokens, please wait before trying again.' }), 'utf8')));
    return Buffer.concat(parts);
  }
  if (!options.truncateAfterDeltas) {
    parts.push(bedrockEvent('contentBlockStop', { contentBlockIndex: 0, p: padding(3) }));
    parts.push(bedrockEvent('messageStop', { p: padding(4), stopReason: 'end_turn' }));
    parts.push(bedrockEvent('metadata', { metrics: { latencyMs: 812 }, p: padding(5), usage: bedrockUsage(options.usage) }));
  }
  return Buffer.concat(parts);
}

/**
 * InvokeModel's stream for Claude: each Anthropic Messages event (as anthropicMessagesSse makes it)
 * base64 inside a `chunk` message; message_stop carries Bedrock's invocation metrics.
 */
export function bedrockInvokeStream(options: AnthropicMessagesSseOptions): Buffer {
  const events = anthropicMessagesSse(options)
    .split('\n\n')
    .map((block) => block.split('\n').find((line) => line.startsWith('data: ')))
    .filter((line): line is string => line !== undefined)
    .map((line) => JSON.parse(line.slice('data: '.length)) as Record<string, unknown>);
  return Buffer.concat(
    events.map((event, index) => {
      const payload = event.type === 'message_stop' ? { ...event, 'amazon-bedrock-invocationMetrics': { inputTokenCount: options.usage.input - options.usage.cachedInput - options.usage.cacheWrite, outputTokenCount: options.usage.output, invocationLatency: 812, firstByteLatency: 233 } } : event;
      return eventStreamMessage({ ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' }, Buffer.from(JSON.stringify({ bytes: Buffer.from(JSON.stringify(payload), 'utf8').toString('base64'), p: padding(index) }), 'utf8'));
    }),
  );
}

export function bedrockErrorJson(message = 'The model returned the following errors: Malformed input request.'): string {
  return JSON.stringify({ message });
}

// ---------------------------------------------------------------------------------------------
// Batches and background responses: created now, billed later; no usage in the reply.

export function anthropicBatchJson(requests: number): string {
  return JSON.stringify({
    id: 'msgbatch_013Zva2CMHLNnXjNJJKqJ2EF',
    type: 'message_batch',
    processing_status: 'in_progress',
    request_counts: { processing: requests, succeeded: 0, errored: 0, canceled: 0, expired: 0 },
    ended_at: null,
    created_at: '2026-12-01T18:37:24.100435Z',
    expires_at: '2026-12-02T18:37:24.100435Z',
    archived_at: null,
    cancel_initiated_at: null,
    results_url: null,
  });
}

export function openAiBatchJson(inputFileId: string, endpoint: string): string {
  return JSON.stringify({
    id: 'batch_abc123',
    object: 'batch',
    endpoint,
    errors: null,
    input_file_id: inputFileId,
    completion_window: '24h',
    status: 'validating',
    output_file_id: null,
    error_file_id: null,
    created_at: DEFAULT_CREATED,
    in_progress_at: null,
    expires_at: DEFAULT_CREATED + 86_400,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    request_counts: { total: 0, completed: 0, failed: 0 },
    metadata: null,
  });
}

/** A `background: true` Responses reply: queued, no output, no usage yet. */
export function openAiBackgroundResponseJson(model: string): string {
  return JSON.stringify({ id: 'resp_bg_67ccd2bed1ec8190', object: 'response', created_at: DEFAULT_CREATED, status: 'queued', background: true, model, output: [], usage: null, error: null });
}

// ---------------------------------------------------------------------------------------------
// Errors

/** OpenAI's error body for `status`. */
export function openAiErrorJson(status: number, message = 'The server had an error while processing your request.'): string {
  const type = status === 429 ? 'rate_limit_exceeded' : status >= 500 ? 'server_error' : 'invalid_request_error';
  const code = status === 429 ? 'rate_limit_exceeded' : status === 404 ? 'model_not_found' : null;
  return JSON.stringify({ error: { message, type, param: null, code } });
}

const ANTHROPIC_ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

/** Anthropic's error body for `status`. */
export function anthropicErrorJson(status: number, message = 'Internal server error'): string {
  return JSON.stringify({ type: 'error', error: { type: ANTHROPIC_ERROR_TYPES[status] ?? 'api_error', message }, request_id: 'req_011CSHoEeqs5C35K2UUqR7Fy' });
}

/** The `error` event Anthropic sends inside a stream (e.g. overloaded). */
export function anthropicSseError(message = 'Overloaded'): string {
  return sseEvent('error', { type: 'error', error: { type: 'overloaded_error', message } });
}

/** The `error` event the Responses API sends inside a stream. */
export function openAiResponsesSseError(message = 'The server had an error while processing your request.'): string {
  return sseEvent('error', { type: 'error', code: 'server_error', message, param: null, sequence_number: 99 });
}

// ---------------------------------------------------------------------------------------------
// Chunking

/** Splits bytes at the given offsets (sorted, deduplicated, clamped). */
export function splitAt(bytes: Uint8Array, offsets: readonly number[]): Buffer[] {
  const cuts = [...new Set(offsets.map((offset) => Math.max(0, Math.min(bytes.length, Math.floor(offset)))))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const cut of cuts) {
    if (cut > start) chunks.push(Buffer.from(bytes.subarray(start, cut)));
    start = Math.max(start, cut);
  }
  if (start < bytes.length) chunks.push(Buffer.from(bytes.subarray(start)));
  return chunks;
}


/** `count` random split offsets inside `length` bytes. */
export function randomOffsets(random: () => number, length: number, count: number): number[] {
  return Array.from({ length: count }, () => Math.floor(random() * length));
}

/** Byte offsets that fall inside a multi-byte UTF-8 character (continuation bytes). */
export function offsetsInsideMultibyteCharacters(bytes: Uint8Array): number[] {
  const offsets: number[] = [];
  for (let index = 0; index < bytes.length; index += 1) if ((bytes[index]! & 0xc0) === 0x80) offsets.push(index);
  return offsets;
}

/**
 * The token-count replies (free calls, no usage object): Anthropic `POST /v1/messages/count_tokens`
 * (and Claude on Vertex AI) `{"input_tokens"}`, OpenAI `POST /v1/responses/input_tokens`
 * `{"object":"response.input_tokens","input_tokens"}`, Gemini `:countTokens` `{"totalTokens",
 * "promptTokensDetails"}`, Bedrock CountTokens `{"inputTokens"}`.
 */
export function countTokensJson(provider: 'anthropic' | 'openai' | 'google' | 'bedrock', inputTokens: number): string {
  switch (provider) {
    case 'anthropic':
      return JSON.stringify({ input_tokens: inputTokens });
    case 'openai':
      return JSON.stringify({ object: 'response.input_tokens', input_tokens: inputTokens });
    case 'google':
      return JSON.stringify({ totalTokens: inputTokens, promptTokensDetails: [{ modality: 'TEXT', tokenCount: inputTokens }] });
    case 'bedrock':
      return JSON.stringify({ inputTokens });
  }
}

export { seededRandom } from './seeded-random.js';
