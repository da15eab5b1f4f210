/**
 * A stub LLM provider speaking the real wire formats (see llm-wire.ts): OpenAI Chat
 * Completions (JSON and SSE), Responses (JSON and SSE; `background: true` answers queued),
 * Embeddings (JSON), legacy Completions (JSON and SSE), Batch; Azure OpenAI deployments (OpenAI's
 * formats, chat streams opening with a prompt-filter chunk); Anthropic Messages (JSON and SSE) and
 * Message Batches; Gemini generateContent (JSON) and streamGenerateContent (SSE with `alt=sse`,
 * else a streamed JSON array); Bedrock Converse (JSON) and ConverseStream (AWS event-stream
 * binary frames), with known usage; the token-count calls (free: their own small replies). The API is chosen by path (a prefix such as
 * `/openai` is allowed); other paths fall back to `respond` or echo like startUpstream.
 *
 * Per request, headers steer it:
 * - `x-stub-usage: {"input":120,"cachedInput":20,"output":30}` — the usage to report
 *   (service terms: input includes cached and cache-written tokens; output includes reasoning);
 * - `x-stub-model: gpt-4o-2024-08-06` — the model the response names (default: the request's);
 * - `x-stub-behavior: a,b` with any of:
 *   `status=429` (any 4xx/5xx: the provider's error JSON), `reset-mid-stream` (destroy the
 *   socket after about half the stream), `no-usage` (never send the usage: OpenAI chat without
 *   the usage chunk, Responses and Anthropic cut before their final events), `ignore-include-usage`
 *   (stream without the usage chunk even when asked), `stream-error` (an in-stream error event
 *   after the deltas, Anthropic and Responses), `thinking` (Anthropic: a thinking block first),
 *   `two-message-deltas` (Anthropic: a partial message_delta before the final one),
 *   `delta-carries-input` (Anthropic: the final message_delta repeats the input counts),
 *   `bill-max=<window>` (bill the most the forwarded request allows: output = its cap × n, input = its
 *   bytes, or the window when it carries input outside the body, plus a window per server-tool call
 *   at its max_uses / max_tool_calls, Anthropic server_tool_use = those calls),
 *   `reset-before-headers` (destroy the connection without answering: Envoy replies 503 itself),
 *   `chunk-delay=<ms>` (this response's pause between writes: a stream that lasts).
 * Every request is recorded (raw body bytes included); `received(testId)` returns those
 * tagged with the `x-test-id` header, the same contract as startUpstream's `requestsWith`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createAiPathMatcher, DEFAULT_AI_PATHS, FORMAT_OF, isFreeApi, PROVIDER_OF, type AiApi } from '../../src/usage/ai-api.js';
import { readRequestBound } from '../../src/usage/request-bound.js';
import {
  anthropicBatchJson,
  azurePromptFilterChunk,
  bedrockConverseJson,
  bedrockConverseStream,
  bedrockErrorJson,
  bedrockInvokeStream,
  countTokensJson,
  geminiErrorJson,
  geminiJson,
  geminiJsonArray,
  geminiSse,
  openAiBackgroundResponseJson,
  openAiBatchJson,
  openAiCompletionsJson,
  openAiCompletionsSse,
  anthropicErrorJson,
  anthropicMessagesJson,
  anthropicMessagesSse,
  anthropicSseError,
  DEFAULT_TEXT,
  offsetsInsideMultibyteCharacters,
  openAiChatJson,
  openAiChatSse,
  openAiEmbeddingsJson,
  openAiErrorJson,
  openAiResponsesJson,
  openAiResponsesSse,
  openAiResponsesSseError,
  splitAt,
  tokenUsage,
  type TokenUsage,
} from './llm-wire.js';
import type { EchoBody, RecordedRequest } from './start-upstream.js';

export const STUB_TEST_ID_HEADER = 'x-test-id';
export const STUB_USAGE_HEADER = 'x-stub-usage';
export const STUB_MODEL_HEADER = 'x-stub-model';
export const STUB_BEHAVIOR_HEADER = 'x-stub-behavior';

export interface StubLlmRequest extends RecordedRequest {
  /** The body exactly as received. */
  readonly rawBody: Buffer;
  /** The API its path selected, if any. */
  readonly api: AiApi | undefined;
  /** The model or deployment its path names (Gemini, Bedrock, Azure), percent-decoded. */
  readonly pathModel?: string | undefined;
}

export interface StartStubLlmOptions {
  readonly host?: string;
  /** Usage reported when a request has no x-stub-usage header. */
  readonly usage?: TokenUsage;
  /** The generated text. */
  readonly text?: string;
  /** Pause between the writes of a streamed body (ms, default 5). */
  readonly chunkDelayMs?: number;
  /** Byte offsets at which a streamed body is cut into writes (default: eight pieces, one cut inside a multi-byte character). */
  readonly splitPoints?: (body: Buffer) => readonly number[];
  /** AI paths by API (default the providers' own). */
  readonly paths?: Readonly<Partial<Record<AiApi, readonly string[]>>>;
  /** Answers a non-AI request; return true when it did. Otherwise the stub echoes it like startUpstream. */
  readonly respond?: (request: StubLlmRequest, response: ServerResponse) => boolean | void;
}

export interface StubLlm {
  readonly url: string;
  readonly port: number;
  /** Every request received, in arrival order. */
  readonly requests: StubLlmRequest[];
  /** The requests whose `name` header equals `value`. */
  requestsWith(name: string, value: string): StubLlmRequest[];
  /** The requests tagged `x-test-id: <testId>`. */
  received(testId: string): StubLlmRequest[];
  stop(): Promise<void>;
}

export const STUB_DEFAULT_USAGE: TokenUsage = tokenUsage({ input: 42, cachedInput: 10, cacheWrite: 0, output: 17, reasoning: 0 });

interface Behavior {
  readonly status: number | undefined;
  readonly resetMidStream: boolean;
  readonly noUsage: boolean;
  readonly ignoreIncludeUsage: boolean;
  readonly streamError: boolean;
  readonly thinking: boolean;
  readonly twoMessageDeltas: boolean;
  readonly deltaCarriesInput: boolean;
  /** bill-max=<window>: the context window assumed for inputs outside the body. */
  readonly billMaxWindow: number | undefined;
  readonly resetBeforeHeaders: boolean;
  /** chunk-delay=<ms>: this response's pause between writes (else the stub's chunkDelayMs). */
  readonly chunkDelayMs: number | undefined;
}

function behaviorOf(header: string | string[] | undefined): Behavior {
  const words = new Set(
    String(header ?? '')
      .split(',')
      .map((word) => word.trim())
      .filter(Boolean),
  );
  let status: number | undefined;
  let billMaxWindow: number | undefined;
  let chunkDelayMs: number | undefined;
  for (const word of words) {
    const delay = /^chunk-delay=(\d+)$/.exec(word);
    if (delay) chunkDelayMs = Number(delay[1]);
    const match = /^status[=:](\d{3})$/.exec(word);
    if (match) status = Number(match[1]);
    const bill = /^bill-max=(\d+)$/.exec(word);
    if (bill) billMaxWindow = Number(bill[1]);
  }
  return {
    status,
    resetMidStream: words.has('reset-mid-stream'),
    noUsage: words.has('no-usage'),
    ignoreIncludeUsage: words.has('ignore-include-usage'),
    streamError: words.has('stream-error'),
    thinking: words.has('thinking'),
    twoMessageDeltas: words.has('two-message-deltas'),
    deltaCarriesInput: words.has('delta-carries-input'),
    billMaxWindow,
    resetBeforeHeaders: words.has('reset-before-headers'),
    chunkDelayMs,
  };
}

/** The most a provider could bill for the request it received (see bill-max above): a chat body with both caps, the larger (upstreams differ on which counts). */
function maximumBill(api: AiApi, json: Record<string, unknown>, bodyBytes: number, window: number): TokenUsage {
  const bound = readRequestBound(api, json);
  const calls = bound.serverTools.reduce((sum, tool) => sum + (tool.maxCalls ?? 0), 0);
  const input = (bound.outsideInputs.length > 0 ? Math.max(bodyBytes, window) : bodyBytes) + calls * window;
  const capOf = (value: unknown) => (typeof value === 'number' ? value : 0);
  const cap = api === 'openai.responses' ? capOf(json.max_output_tokens) : api === 'openai.chat' ? Math.max(capOf(json.max_completion_tokens), capOf(json.max_tokens)) : capOf(json.max_tokens);
  // Gemini: generationConfig and its proto spelling generation_config, merged (Google reads both).
  const gemini = { ...(json.generation_config as Record<string, unknown> | undefined), ...(json.generationConfig as Record<string, unknown> | undefined) };
  const geminiCap = capOf(gemini.maxOutputTokens ?? gemini.max_output_tokens);
  const geminiCount = gemini.candidateCount ?? gemini.candidate_count;
  const n = typeof json.n === 'number' ? json.n : typeof geminiCount === 'number' ? geminiCount : 1;
  const serverToolCalls = Object.fromEntries(bound.serverTools.map((tool) => [tool.name, tool.maxCalls ?? 0]));
  return tokenUsage({ input, output: (api.startsWith('gemini.') ? geminiCap : cap) * n, ...(calls > 0 ? { serverToolCalls } : {}) });
}

function defaultSplitPoints(body: Buffer): number[] {
  const offsets = Array.from({ length: 7 }, (_, index) => Math.floor(((index + 1) * body.length) / 8) + 3);
  const inside = offsetsInsideMultibyteCharacters(body);
  if (inside.length > 0) offsets.push(inside[Math.floor(inside.length / 2)]!);
  return offsets;
}

export async function startStubLlm(options: StartStubLlmOptions = {}): Promise<StubLlm> {
  const requests: StubLlmRequest[] = [];
  const matcher = createAiPathMatcher(options.paths ?? DEFAULT_AI_PATHS);
  const delayMs = options.chunkDelayMs ?? 5;
  const splitPoints = options.splitPoints ?? defaultSplitPoints;
  const server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      const path = incoming.url ?? '';
      const route = matcher.route(path);
      const recorded: StubLlmRequest = { method: incoming.method ?? '', path, headers: incoming.headers, body: rawBody.toString('utf8'), rawBody, api: route?.api, pathModel: route?.pathModel };
      requests.push(recorded);
      if (recorded.api === undefined) {
        if (options.respond?.(recorded, response) === true) return;
        const echo: EchoBody = { method: recorded.method, path: recorded.path, headers: recorded.headers, body: recorded.body };
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(echo));
        return;
      }
      answer(recorded, recorded.api, response);
    });
  });

  function answer(request: StubLlmRequest, api: AiApi, response: ServerResponse): void {
    const behavior = behaviorOf(request.headers[STUB_BEHAVIOR_HEADER]);
    const format = FORMAT_OF[api];
    const errorJson =
      format === 'anthropic.messages' || format === 'anthropic.batches' ? anthropicErrorJson
      : format === 'gemini' ? geminiErrorJson
      : format === 'bedrock.converse' || format === 'bedrock.invoke' ? (_status: number, message?: string) => bedrockErrorJson(message)
      : openAiErrorJson;
    let json: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(request.body);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      json = parsed as Record<string, unknown>;
    } catch {
      sendJson(response, 400, errorJson(400, 'We could not parse the JSON body of your request.'));
      return;
    }
    if (behavior.status !== undefined && behavior.status >= 400) {
      sendJson(response, behavior.status, errorJson(behavior.status, `stub error ${behavior.status}`));
      return;
    }
    if (behavior.resetBeforeHeaders) {
      response.socket?.destroy();
      return;
    }
    const usage = (behavior.billMaxWindow !== undefined ? maximumBill(api, json, request.rawBody.length, behavior.billMaxWindow) : undefined) ?? usageOf(request.headers[STUB_USAGE_HEADER]) ?? options.usage ?? STUB_DEFAULT_USAGE;
    if (isFreeApi(api)) {
      const provider = PROVIDER_OF[api];
      sendJson(response, 200, countTokensJson(provider === 'vertex' ? 'anthropic' : provider === 'azure' ? 'openai' : provider, usage.input));
      return;
    }
    const model = String(request.headers[STUB_MODEL_HEADER] ?? (typeof json.model === 'string' ? json.model : (request.pathModel ?? 'unknown-model')));
    const text = options.text ?? DEFAULT_TEXT;
    const fixture = { model, usage, text };
    const stream = api === 'gemini.stream' || api === 'bedrock.converse-stream' || api === 'bedrock.invoke-stream' || (json.stream === true && format !== 'openai.embeddings');
    const other = otherShape(request, api, json, fixture, behavior, stream);
    if (other !== undefined) {
      if ('contentType' in other) writeInPieces(response, other.body, other.contentType, behavior.resetMidStream, behavior.chunkDelayMs);
      else sendJson(response, 200, other.body);
      return;
    }
    if (!stream) {
      const body =
        format === 'openai.chat'
          ? openAiChatJson({ ...fixture, n: typeof json.n === 'number' ? json.n : 1 })
          : format === 'openai.responses'
            ? openAiResponsesJson(fixture)
            : format === 'openai.embeddings'
              ? openAiEmbeddingsJson({ model, inputTokens: usage.input, vectors: Array.isArray(json.input) ? json.input.length : 1 })
              : anthropicMessagesJson(behavior.thinking ? { ...fixture, thinking: 'Let me think about capitals.' } : fixture);
      sendJson(response, 200, body);
      return;
    }
    const streamOptions = json.stream_options as { include_usage?: unknown } | undefined;
    const includeUsage = streamOptions?.include_usage === true && !behavior.ignoreIncludeUsage && !behavior.noUsage;
    let body: string;
    if (format === 'openai.chat') body = (isAzure(api) ? azurePromptFilterChunk() : '') + openAiChatSse({ ...fixture, includeUsage });
    else if (format === 'openai.responses') {
      body = openAiResponsesSse({ ...fixture, truncateAfterDeltas: behavior.noUsage || behavior.streamError });
      if (behavior.streamError) body += openAiResponsesSseError();
    } else {
      body = anthropicMessagesSse({
        ...fixture,
        truncateAfterDeltas: behavior.noUsage || behavior.streamError,
        twoMessageDeltas: behavior.twoMessageDeltas,
        deltaCarriesInput: behavior.deltaCarriesInput,
        ...(behavior.thinking ? { thinking: 'Let me think about capitals.' } : {}),
      });
      if (behavior.streamError) body += anthropicSseError();
    }
    writeInPieces(response, Buffer.from(body, 'utf8'), 'text/event-stream; charset=utf-8', behavior.resetMidStream, behavior.chunkDelayMs);
  }

  /** The shapes beyond the original four: a whole JSON body (string) or a stream (bytes and their content type). */
  function otherShape(request: StubLlmRequest, api: AiApi, json: Record<string, unknown>, fixture: { model: string; usage: TokenUsage; text: string }, behavior: Behavior, stream: boolean): { body: string } | { body: Buffer; contentType: string } | undefined {
    const format = FORMAT_OF[api];
    const cut = behavior.noUsage || behavior.streamError;
    switch (format) {
      case 'openai.completions': {
        if (!stream) return { body: openAiCompletionsJson({ ...fixture, n: typeof json.n === 'number' ? json.n : 1 }) };
        const streamOptions = json.stream_options as { include_usage?: unknown } | undefined;
        return { body: Buffer.from(openAiCompletionsSse({ ...fixture, includeUsage: streamOptions?.include_usage === true && !behavior.noUsage }), 'utf8'), contentType: 'text/event-stream; charset=utf-8' };
      }
      case 'openai.batches':
        return { body: openAiBatchJson(String(json.input_file_id), String(json.endpoint)) };
      case 'anthropic.batches':
        return { body: anthropicBatchJson(Array.isArray(json.requests) ? json.requests.length : 0) };
      case 'openai.responses':
        return json.background === true ? { body: openAiBackgroundResponseJson(fixture.model) } : undefined;
      case 'gemini': {
        if (!stream) return { body: geminiJson(fixture) };
        const sse = /[?&]alt=sse(&|$)/.test(request.path);
        return sse
          ? { body: Buffer.from(geminiSse({ ...fixture, truncateAfterDeltas: cut }), 'utf8'), contentType: 'text/event-stream' }
          : { body: Buffer.from(geminiJsonArray({ ...fixture, truncateAfterDeltas: cut }), 'utf8'), contentType: 'application/json; charset=UTF-8' };
      }
      case 'bedrock.invoke':
        if (!stream) return { body: anthropicMessagesJson(fixture) };
        return { body: bedrockInvokeStream({ ...fixture, truncateAfterDeltas: behavior.noUsage }), contentType: 'application/vnd.amazon.eventstream' };
      case 'bedrock.converse':
        if (!stream) return { body: bedrockConverseJson(fixture) };
        return { body: bedrockConverseStream({ ...fixture, truncateAfterDeltas: behavior.noUsage, ...(behavior.streamError ? { exception: 'throttlingException' } : {}) }), contentType: 'application/vnd.amazon.eventstream' };
      default:
        return undefined;
    }
  }

  function writeInPieces(response: ServerResponse, bytes: Buffer, contentType: string, resetMidStream: boolean, pauseMs = delayMs): void {
    const pieces = splitAt(bytes, splitPoints(bytes));
    response.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', 'x-request-id': 'req_stub' });
    const stopAt = resetMidStream ? Math.max(1, Math.floor(pieces.length / 2)) : pieces.length;
    let next = 0;
    const writeNext = () => {
      if (response.destroyed) return;
      if (next >= stopAt) {
        if (resetMidStream) response.socket?.destroy();
        else response.end();
        return;
      }
      response.write(pieces[next++]);
      setTimeout(writeNext, pauseMs);
    };
    writeNext();
  }

  const host = options.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
  const requestsWith = (name: string, value: string) => requests.filter((request) => request.headers[name.toLowerCase()] === value);
  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    requestsWith,
    received: (testId) => requestsWith(STUB_TEST_ID_HEADER, testId),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function isAzure(api: AiApi): boolean {
  return api.startsWith('azure.');
}

function sendJson(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': 'req_stub' }).end(body);
}

function usageOf(header: string | string[] | undefined): TokenUsage | undefined {
  if (typeof header !== 'string' || header.length === 0) return undefined;
  const parsed = JSON.parse(header) as Partial<TokenUsage>;
  return tokenUsage({ input: parsed.input ?? 0, output: parsed.output ?? 0, cachedInput: parsed.cachedInput ?? 0, cacheWrite: parsed.cacheWrite ?? 0, reasoning: parsed.reasoning ?? 0 });
}
