/**
 * The providers' usage objects and error bodies, read into TokenUsage and a message: the fields of
 * OpenAI (Chat, Responses, Embeddings), Anthropic (cumulative, with cache writes and server tools),
 * Gemini and Bedrock, shared by the SSE and JSON meters (response-usage.ts) and the Bedrock
 * event-stream meter (event-stream-usage.ts).
 */
import type { WireFormat } from './ai-api.js';
import type { TokenUsage } from './token-usage.js';

/** The text-to-token ratio of the estimate: about four characters per token for English text. */
const CHARS_PER_TOKEN = 4;

export function estimateTokens(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

export function objectAt(value: unknown, key: string): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const inner = (value as Record<string, unknown>)[key];
  return typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as Record<string, unknown>) : undefined;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function normalized(input: number, cachedInput: number, cacheWrite: number, output: number, reasoning: number): TokenUsage {
  const cached = Math.min(cachedInput, input);
  return { input, cachedInput: cached, cacheWrite: Math.min(cacheWrite, input - cached), output, reasoning: Math.min(reasoning, output) };
}

/** OpenAI Chat Completions and Embeddings: prompt_tokens already include the cached ones; completion_tokens the reasoning ones. */
export function fromOpenAiChatUsage(usage: Record<string, unknown>): TokenUsage {
  const input = count(usage.prompt_tokens ?? usage.input_tokens);
  const cached = count(objectAt(usage, 'prompt_tokens_details')?.cached_tokens ?? objectAt(usage, 'input_tokens_details')?.cached_tokens);
  const output = count(usage.completion_tokens ?? usage.output_tokens);
  const reasoning = count(objectAt(usage, 'completion_tokens_details')?.reasoning_tokens ?? objectAt(usage, 'output_tokens_details')?.reasoning_tokens);
  return normalized(input, cached, 0, output, reasoning);
}

/** OpenAI Responses: input_tokens include input_tokens_details.cached_tokens; output_tokens include reasoning_tokens. */
export function fromOpenAiResponsesUsage(usage: Record<string, unknown>): TokenUsage {
  const input = count(usage.input_tokens ?? usage.prompt_tokens);
  const cached = count(objectAt(usage, 'input_tokens_details')?.cached_tokens);
  const output = count(usage.output_tokens ?? usage.completion_tokens);
  const reasoning = count(objectAt(usage, 'output_tokens_details')?.reasoning_tokens);
  return normalized(input, cached, 0, output, reasoning);
}

export interface AnthropicCounts {
  input: number;
  cacheRead: number;
  cacheCreation: number;
  output: number;
  /** cache_creation.ephemeral_1h_input_tokens, when told. */
  cacheCreation1h?: number;
  /** usage.server_tool_use: calls of server tools by name, when told. */
  serverTools?: Record<string, number>;
}

/** Anthropic reports uncached input beside cache reads and writes; all three are billed input. Thinking is inside output_tokens. */
export function fromAnthropicCounts(counts: AnthropicCounts): TokenUsage {
  const usage = normalized(counts.input + counts.cacheRead + counts.cacheCreation, counts.cacheRead, counts.cacheCreation, counts.output, 0);
  return {
    ...usage,
    // Only a positive count is kept: absent, the request's cache_control decides how writes are priced (usage-accounting.ts).
    ...(counts.cacheCreation1h !== undefined && counts.cacheCreation1h > 0 ? { cacheWrite1h: Math.min(counts.cacheCreation1h, usage.cacheWrite) } : {}),
    ...(counts.serverTools !== undefined ? { serverToolCalls: counts.serverTools } : {}),
  };
}

/** The bill's extras: 1-hour cache writes and server tool calls (web_search_requests → web_search). */
function mergeAnthropicExtras(counts: AnthropicCounts, usage: Record<string, unknown>): void {
  const creation = objectAt(usage, 'cache_creation');
  if (creation && creation.ephemeral_1h_input_tokens !== undefined && creation.ephemeral_1h_input_tokens !== null) counts.cacheCreation1h = count(creation.ephemeral_1h_input_tokens);
  const tools = objectAt(usage, 'server_tool_use');
  if (tools) {
    const calls: Record<string, number> = { ...counts.serverTools };
    for (const [key, value] of Object.entries(tools)) if (key.endsWith('_requests')) calls[key.slice(0, -'_requests'.length)] = count(value);
    counts.serverTools = calls;
  }
}

/** Anthropic usage is cumulative: a field present overrides the earlier value, a field absent keeps it. */
export function mergeAnthropicUsage(counts: AnthropicCounts, usage: Record<string, unknown>): void {
  if (usage.input_tokens !== undefined && usage.input_tokens !== null) counts.input = count(usage.input_tokens);
  if (usage.cache_read_input_tokens !== undefined && usage.cache_read_input_tokens !== null) counts.cacheRead = count(usage.cache_read_input_tokens);
  if (usage.cache_creation_input_tokens !== undefined && usage.cache_creation_input_tokens !== null) counts.cacheCreation = count(usage.cache_creation_input_tokens);
  if (usage.output_tokens !== undefined && usage.output_tokens !== null) counts.output = count(usage.output_tokens);
  mergeAnthropicExtras(counts, usage);
}

/** Gemini: promptTokenCount includes the cached tokens; thinking is billed as output beside candidatesTokenCount. */
export function fromGeminiUsage(usage: Record<string, unknown>): TokenUsage {
  const input = count(usage.promptTokenCount) + count(usage.toolUsePromptTokenCount);
  const reasoning = count(usage.thoughtsTokenCount);
  return normalized(input, count(usage.cachedContentTokenCount), 0, count(usage.candidatesTokenCount) + reasoning, reasoning);
}

/** Bedrock Converse: inputTokens are the uncached ones; cache reads and writes are reported beside them (as Anthropic does). */
export function fromBedrockUsage(usage: Record<string, unknown>): TokenUsage {
  const cacheRead = count(usage.cacheReadInputTokens);
  const cacheWrite = count(usage.cacheWriteInputTokens);
  return normalized(count(usage.inputTokens) + cacheRead + cacheWrite, cacheRead, cacheWrite, count(usage.outputTokens), 0);
}

export function usageFromJson(format: WireFormat, usage: Record<string, unknown>): TokenUsage {
  switch (format) {
    case 'openai.chat':
    case 'openai.embeddings':
    case 'openai.completions':
    case 'openai.batches':
      return fromOpenAiChatUsage(usage);
    case 'gemini':
      return fromGeminiUsage(usage);
    case 'bedrock.converse':
      return fromBedrockUsage(usage);
    case 'openai.responses':
      return fromOpenAiResponsesUsage(usage);
    case 'anthropic.batches':
    case 'bedrock.invoke':
    case 'anthropic.messages': {
      const counts: AnthropicCounts = { input: 0, cacheRead: 0, cacheCreation: 0, output: 0 };
      mergeAnthropicUsage(counts, usage);
      return fromAnthropicCounts(counts);
    }
  }
}

/** `{"error": {"message": ...}}` (OpenAI, Anthropic inside `error`; Gemini names its kind in `status`), or a bare string. */
export function errorMessageOf(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined;
  if (typeof error === 'string') return error;
  if (isObject(error)) {
    const message = typeof error.message === 'string' ? error.message : undefined;
    // `type` names the error kind, except on the Responses API's error event where it is the event name.
    const kind = typeof error.type === 'string' && error.type !== 'error' ? error.type : typeof error.code === 'string' ? error.code : typeof error.status === 'string' ? error.status : undefined;
    if (message !== undefined) return kind !== undefined ? `${kind}: ${message}` : message;
    if (kind !== undefined) return kind;
  }
  return JSON.stringify(error).slice(0, 1000);
}
