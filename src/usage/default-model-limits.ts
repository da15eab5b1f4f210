import type { ModelPrice } from './price-entry.js';

/**
 * What bounds a model's bill beyond its per-token prices, per model pattern (the same patterns as
 * default-prices.ts, version DEFAULT_MODEL_LIMITS_VERSION): the context window (the most input one
 * model call reads), the most output one call produces, Anthropic's 1-hour cache-write price, the
 * long-context tier and the priority tier's prices. createPriceTable fills each price entry's
 * missing fields from here by pattern, for the shipped table and for policy entries alike (a
 * window is a fact about the model, not about a contract).
 *
 * Where a provider's page lists no window for a model (the newest Claude generations on the
 * version date), the table holds the largest window the provider offers, 1,000,000 tokens, and
 * Sonnet's long-context premium (2× input, 1.5× output past 200K): a bound, never an
 * under-estimate. Put the real figures in the policy when your contract says otherwise.
 */
export const DEFAULT_MODEL_LIMITS_VERSION = '2026-12-01';

export interface ModelLimits {
  readonly contextWindow?: number;
  readonly maxOutput?: number;
  readonly cacheWrite1h?: ModelPrice['cacheWrite1h'];
  readonly longContext?: ModelPrice['longContext'];
  readonly priority?: ModelPrice['priority'];
  readonly source: string;
}

const OPENAI_MODELS = 'https://platform.openai.com/docs/models (windows, max output); https://platform.openai.com/docs/pricing (priority)';
const ANTHROPIC_MODELS = 'https://platform.claude.com/docs/en/about-claude/models/overview (windows, max output); https://platform.claude.com/docs/en/about-claude/pricing (1h cache writes, long context)';
const GEMINI_MODELS = 'https://ai.google.dev/gemini-api/docs/models (windows, max output); https://ai.google.dev/gemini-api/docs/pricing (over 200K)';
const NOVA_MODELS = 'https://docs.aws.amazon.com/nova/latest/userguide/what-is-nova.html';
const ANTHROPIC_BOUND = 'no window listed on the version date: the largest Claude window and Sonnet\'s long-context premium, as a bound';

const exact = (value: number) => Math.round(value * 1e6) / 1e6;
const sonnetLong = (input: number, output: number) => ({ above: 200_000, input: exact(input * 2), output: exact(output * 1.5), cachedInput: exact(input * 0.2), cacheWrite: exact(input * 2.5), cacheWrite1h: exact(input * 4) });

export const DEFAULT_MODEL_LIMITS: Readonly<Record<string, ModelLimits>> = Object.freeze({
  // OpenAI
  'gpt-5': { contextWindow: 400_000, maxOutput: 128_000, priority: { input: '2.50', cachedInput: '0.25', output: '20' }, source: OPENAI_MODELS },
  'gpt-5-mini': { contextWindow: 400_000, maxOutput: 128_000, priority: { input: '0.45', cachedInput: '0.045', output: '3.60' }, source: OPENAI_MODELS },
  'gpt-5-nano': { contextWindow: 400_000, maxOutput: 128_000, source: OPENAI_MODELS },
  'gpt-4.1': { contextWindow: 1_047_576, maxOutput: 32_768, priority: { input: '3.50', cachedInput: '0.875', output: '14' }, source: OPENAI_MODELS },
  'gpt-4.1-mini': { contextWindow: 1_047_576, maxOutput: 32_768, priority: { input: '0.70', cachedInput: '0.175', output: '2.80' }, source: OPENAI_MODELS },
  'gpt-4.1-nano': { contextWindow: 1_047_576, maxOutput: 32_768, priority: { input: '0.20', cachedInput: '0.05', output: '0.80' }, source: OPENAI_MODELS },
  'gpt-4o': { contextWindow: 128_000, maxOutput: 16_384, priority: { input: '4.25', cachedInput: '2.125', output: '17' }, source: OPENAI_MODELS },
  'gpt-4o-2024-05-13': { contextWindow: 128_000, maxOutput: 4_096, source: OPENAI_MODELS },
  'gpt-4o-mini': { contextWindow: 128_000, maxOutput: 16_384, priority: { input: '0.25', cachedInput: '0.125', output: '1' }, source: OPENAI_MODELS },
  o3: { contextWindow: 200_000, maxOutput: 100_000, priority: { input: '3.50', cachedInput: '0.875', output: '14' }, source: OPENAI_MODELS },
  'o4-mini': { contextWindow: 200_000, maxOutput: 100_000, priority: { input: '2', cachedInput: '0.50', output: '8' }, source: OPENAI_MODELS },
  'gpt-3.5-turbo-instruct': { contextWindow: 4_096, maxOutput: 4_096, source: OPENAI_MODELS },
  'davinci-002': { contextWindow: 16_384, maxOutput: 16_384, source: OPENAI_MODELS },
  'babbage-002': { contextWindow: 16_384, maxOutput: 16_384, source: OPENAI_MODELS },
  'text-embedding-3-small': { contextWindow: 8_191, source: OPENAI_MODELS },
  'text-embedding-3-large': { contextWindow: 8_191, source: OPENAI_MODELS },
  'text-embedding-ada-002': { contextWindow: 8_191, source: OPENAI_MODELS },

  // Anthropic: 1-hour cache writes cost 2× the base input price.
  'claude-opus-5-5': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 8, longContext: sonnetLong(4, 20), source: ANTHROPIC_BOUND },
  'claude-sonnet-5-5': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 4, longContext: sonnetLong(2, 10), source: ANTHROPIC_BOUND },
  // Haiku 5.5: prompts over 100,000 tokens cost 5× (default-prices.ts).
  'claude-haiku-5-5': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: '0.20', longContext: { above: 100_000, input: '0.50', cachedInput: '0.05', cacheWrite: '0.625', cacheWrite1h: 1, output: '2.50' }, source: ANTHROPIC_BOUND },
  'claude-opus': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 8, longContext: sonnetLong(4, 20), source: ANTHROPIC_BOUND },
  'claude-sonnet': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 4, longContext: sonnetLong(2, 10), source: ANTHROPIC_BOUND },
  'claude-haiku': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: '0.20', longContext: { above: 100_000, input: '0.50', cachedInput: '0.05', cacheWrite: '0.625', cacheWrite1h: 1, output: '2.50' }, source: ANTHROPIC_BOUND },
  'claude-opus-5': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 10, longContext: sonnetLong(5, 25), source: ANTHROPIC_BOUND },
  'claude-opus-4-8': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 10, longContext: sonnetLong(5, 25), source: ANTHROPIC_BOUND },
  'claude-opus-4-7': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 10, longContext: sonnetLong(5, 25), source: ANTHROPIC_BOUND },
  'claude-opus-4-6': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 10, longContext: sonnetLong(5, 25), source: ANTHROPIC_BOUND },
  'claude-opus-4-5': { contextWindow: 200_000, maxOutput: 64_000, cacheWrite1h: 10, source: ANTHROPIC_MODELS },
  'claude-opus-4-1': { contextWindow: 200_000, maxOutput: 32_000, cacheWrite1h: 30, source: ANTHROPIC_MODELS },
  'claude-opus-4': { contextWindow: 200_000, maxOutput: 32_000, cacheWrite1h: 30, source: ANTHROPIC_MODELS },
  'claude-sonnet-5': { contextWindow: 1_000_000, maxOutput: 128_000, cacheWrite1h: 4, longContext: sonnetLong(2, 10), source: ANTHROPIC_BOUND },
  // Sonnet 4 and 4.5: 200K, or 1M with the context-1m beta; past 200K input the whole request is priced at the long-context rates.
  'claude-sonnet-4-5': { contextWindow: 1_000_000, maxOutput: 64_000, cacheWrite1h: 6, longContext: { above: 200_000, input: 6, cachedInput: '0.60', cacheWrite: '7.50', cacheWrite1h: 12, output: '22.50' }, source: ANTHROPIC_MODELS },
  'claude-sonnet-4': { contextWindow: 1_000_000, maxOutput: 64_000, cacheWrite1h: 6, longContext: { above: 200_000, input: 6, cachedInput: '0.60', cacheWrite: '7.50', cacheWrite1h: 12, output: '22.50' }, source: ANTHROPIC_MODELS },
  'claude-3-7-sonnet': { contextWindow: 200_000, maxOutput: 128_000, cacheWrite1h: 6, source: ANTHROPIC_MODELS },
  'claude-haiku-4-5': { contextWindow: 200_000, maxOutput: 64_000, cacheWrite1h: 2, source: ANTHROPIC_MODELS },
  'claude-3-5-haiku': { contextWindow: 200_000, maxOutput: 8_192, cacheWrite1h: '1.60', source: ANTHROPIC_MODELS },
  'claude-3-haiku': { contextWindow: 200_000, maxOutput: 4_096, cacheWrite1h: '0.50', source: ANTHROPIC_MODELS },

  // Google Gemini: Gemini 2.5 Pro prices a prompt over 200K tokens at its long-context rates.
  'gemini-2.5-pro': { contextWindow: 1_048_576, maxOutput: 65_536, longContext: { above: 200_000, input: '2.50', cachedInput: '0.25', output: '15' }, source: GEMINI_MODELS },
  'gemini-2.5-pro-preview-*': { contextWindow: 1_048_576, maxOutput: 65_536, longContext: { above: 200_000, input: '2.50', cachedInput: '0.25', output: '15' }, source: GEMINI_MODELS },
  'gemini-2.5-flash': { contextWindow: 1_048_576, maxOutput: 65_536, source: GEMINI_MODELS },
  'gemini-2.5-flash-preview-*': { contextWindow: 1_048_576, maxOutput: 65_536, source: GEMINI_MODELS },
  'gemini-2.5-flash-lite': { contextWindow: 1_048_576, maxOutput: 65_536, source: GEMINI_MODELS },
  'gemini-2.5-flash-lite-preview-*': { contextWindow: 1_048_576, maxOutput: 65_536, source: GEMINI_MODELS },
  'gemini-2.0-flash': { contextWindow: 1_048_576, maxOutput: 8_192, source: GEMINI_MODELS },
  'gemini-2.0-flash-lite': { contextWindow: 1_048_576, maxOutput: 8_192, source: GEMINI_MODELS },

  // Amazon Nova on Bedrock.
  'nova-premier': { contextWindow: 1_000_000, maxOutput: 32_000, source: NOVA_MODELS },
  'nova-pro': { contextWindow: 300_000, maxOutput: 10_000, source: NOVA_MODELS },
  'nova-lite': { contextWindow: 300_000, maxOutput: 10_000, source: NOVA_MODELS },
  'nova-micro': { contextWindow: 128_000, maxOutput: 10_000, source: NOVA_MODELS },
} satisfies Record<string, ModelLimits>);

/**
 * USD per call of the tools a provider runs itself, whatever the model (the highest listed price
 * where providers differ). Each call's results are also read as input tokens: the budget reserves a
 * context window of input per call (governance/budget-bound.ts).
 */
export const DEFAULT_SERVER_TOOL_PRICES: Readonly<Record<string, string>> = Object.freeze({
  // OpenAI: $10–25 per 1,000 calls (search-preview models $25); Anthropic: $10 per 1,000 searches.
  web_search: '0.025',
  web_search_preview: '0.025',
  // Anthropic web fetch: no charge beyond the fetched content's tokens.
  web_fetch: '0',
  // OpenAI: $2.50 per 1,000 calls.
  file_search: '0.0025',
  // OpenAI: $0.03 per container; Anthropic code execution: $0.05 per container-hour.
  code_interpreter: '0.03',
  code_execution: '0.05',
  // gpt-image-1 at its largest, highest quality image.
  image_generation: '0.25',
  mcp: '0',
  computer_use_preview: '0',
  local_shell: '0',
  tool_search_tool_regex: '0',
  tool_search_tool_bm25: '0',
});
