import type { PriceEntry } from './price-entry.js';

/**
 * The default price table: standard (not batch, not priority) API prices in USD per million
 * tokens, as the providers' pricing pages listed them on the version date. A policy's
 * `spec.pricing.models` win over it, entry by entry; `spec.pricing.defaults: false` drops it.
 *
 * - OpenAI: `cachedInput` is the "cached input" price; OpenAI reports no cache writes.
 * - Anthropic: `cacheWrite` is the 5-minute cache write price (the default TTL; 1-hour writes cost more
 *   and are not told apart in the usage counts), `cachedInput` the "cache hits and refreshes" price.
 * - Patterns are model families (usage/model-pattern.ts): `claude-sonnet-4-5` prices
 *   `claude-sonnet-4-5-20250929`; `gpt-4o` prices `gpt-4o-2024-08-06`, never `gpt-4o-mini`.
 *   A dated id whose price differs from its family's (`gpt-4o-2024-05-13`) has its own entry.
 * - The bare families `claude-opus`, `claude-sonnet`, `claude-haiku` (the default policy's route
 *   names, and what a client sending just the family gets) price at the current generation
 *   (Opus 5.5, Sonnet 5.5, Haiku 5.5). Every generation still served has its own, more specific entry,
 *   so a dated id never falls back to the bare family's price.
 * - Context windows, max output, long-prompt tiers (Claude Sonnet 4/4.5 and Gemini 2.5 Pro past 200K,
 *   Claude Haiku 5.5 past 100K), 1-hour cache writes and priority prices are in default-model-limits.ts,
 *   by the same patterns. Not modelled: regional/US-only inference multipliers.
 */
export const DEFAULT_PRICES_VERSION = '2026-12-01';

const OPENAI = 'https://platform.openai.com/docs/pricing';
const ANTHROPIC = 'https://platform.claude.com/docs/en/about-claude/pricing';
const GOOGLE = 'https://ai.google.dev/gemini-api/docs/pricing';
const BEDROCK = 'https://aws.amazon.com/bedrock/pricing/';

export const DEFAULT_PRICE_ENTRIES: readonly PriceEntry[] = Object.freeze(
  [
    // OpenAI
    { model: 'gpt-5', price: { input: '1.25', cachedInput: '0.125', output: '10' }, source: OPENAI },
    { model: 'gpt-5-mini', price: { input: '0.25', cachedInput: '0.025', output: '2' }, source: OPENAI },
    { model: 'gpt-5-nano', price: { input: '0.05', cachedInput: '0.005', output: '0.40' }, source: OPENAI },
    { model: 'gpt-4.1', price: { input: '2', cachedInput: '0.50', output: '8' }, source: OPENAI },
    { model: 'gpt-4.1-mini', price: { input: '0.40', cachedInput: '0.10', output: '1.60' }, source: OPENAI },
    { model: 'gpt-4.1-nano', price: { input: '0.10', cachedInput: '0.025', output: '0.40' }, source: OPENAI },
    { model: 'gpt-4o', price: { input: '2.50', cachedInput: '1.25', output: '10' }, source: OPENAI },
    { model: 'gpt-4o-2024-05-13', price: { input: '5', output: '15' }, source: OPENAI },
    { model: 'gpt-4o-mini', price: { input: '0.15', cachedInput: '0.075', output: '0.60' }, source: OPENAI },
    { model: 'o3', price: { input: '2', cachedInput: '0.50', output: '8' }, source: OPENAI },
    { model: 'o4-mini', price: { input: '1.10', cachedInput: '0.275', output: '4.40' }, source: OPENAI },
    { model: 'gpt-3.5-turbo-instruct', price: { input: '1.50', output: '2' }, source: OPENAI },
    { model: 'davinci-002', price: { input: '2', output: '2' }, source: OPENAI },
    { model: 'babbage-002', price: { input: '0.40', output: '0.40' }, source: OPENAI },
    { model: 'text-embedding-3-small', price: { input: '0.02', output: '0' }, source: OPENAI },
    { model: 'text-embedding-3-large', price: { input: '0.13', output: '0' }, source: OPENAI },
    { model: 'text-embedding-ada-002', price: { input: '0.10', output: '0' }, source: OPENAI },

    // Anthropic: the current generation, and the bare families priced at it.
    { model: 'claude-opus-5-5', price: { input: '4', cacheWrite: '5', cachedInput: '0.20', output: '20' }, source: ANTHROPIC },
    { model: 'claude-sonnet-5-5', price: { input: '2', cacheWrite: '2.50', cachedInput: '0.10', output: '10' }, source: ANTHROPIC },
    { model: 'claude-haiku-5-5', price: { input: '0.10', cacheWrite: '0.125', cachedInput: '0.01', output: '0.50' }, source: ANTHROPIC },
    { model: 'claude-opus', price: { input: '4', cacheWrite: '5', cachedInput: '0.20', output: '20' }, source: ANTHROPIC },
    { model: 'claude-sonnet', price: { input: '2', cacheWrite: '2.50', cachedInput: '0.10', output: '10' }, source: ANTHROPIC },
    { model: 'claude-haiku', price: { input: '0.10', cacheWrite: '0.125', cachedInput: '0.01', output: '0.50' }, source: ANTHROPIC },
    // Earlier generations still served.
    { model: 'claude-opus-5', price: { input: '5', cacheWrite: '6.25', cachedInput: '0.50', output: '25' }, source: ANTHROPIC },
    { model: 'claude-opus-4-8', price: { input: '5', cacheWrite: '6.25', cachedInput: '0.50', output: '25' }, source: ANTHROPIC },
    { model: 'claude-opus-4-7', price: { input: '5', cacheWrite: '6.25', cachedInput: '0.50', output: '25' }, source: ANTHROPIC },
    { model: 'claude-opus-4-6', price: { input: '5', cacheWrite: '6.25', cachedInput: '0.50', output: '25' }, source: ANTHROPIC },
    { model: 'claude-opus-4-5', price: { input: '5', cacheWrite: '6.25', cachedInput: '0.50', output: '25' }, source: ANTHROPIC },
    { model: 'claude-opus-4-1', price: { input: '15', cacheWrite: '18.75', cachedInput: '1.50', output: '75' }, source: ANTHROPIC },
    { model: 'claude-opus-4', price: { input: '15', cacheWrite: '18.75', cachedInput: '1.50', output: '75' }, source: ANTHROPIC },
    { model: 'claude-sonnet-5', price: { input: '2', cacheWrite: '2.50', cachedInput: '0.20', output: '10' }, source: ANTHROPIC },
    { model: 'claude-sonnet-4-5', price: { input: '3', cacheWrite: '3.75', cachedInput: '0.30', output: '15' }, source: ANTHROPIC },
    { model: 'claude-sonnet-4', price: { input: '3', cacheWrite: '3.75', cachedInput: '0.30', output: '15' }, source: ANTHROPIC },
    { model: 'claude-3-7-sonnet', price: { input: '3', cacheWrite: '3.75', cachedInput: '0.30', output: '15' }, source: ANTHROPIC },
    { model: 'claude-haiku-4-5', price: { input: '1', cacheWrite: '1.25', cachedInput: '0.10', output: '5' }, source: ANTHROPIC },
    { model: 'claude-3-5-haiku', price: { input: '0.80', cacheWrite: '1', cachedInput: '0.08', output: '4' }, source: ANTHROPIC },
    { model: 'claude-3-haiku', price: { input: '0.25', cacheWrite: '0.30', cachedInput: '0.03', output: '1.25' }, source: ANTHROPIC },

    // Google Gemini (paid tier, prompts ≤ 200K tokens; thinking tokens are billed as output). Preview ids
    // (gemini-2.5-flash-preview-09-2025) are not versions of the family, so each has a glob.
    { model: 'gemini-2.5-pro', price: { input: '1.25', cachedInput: '0.125', output: '10' }, source: GOOGLE },
    { model: 'gemini-2.5-pro-preview-*', price: { input: '1.25', cachedInput: '0.125', output: '10' }, source: GOOGLE },
    { model: 'gemini-2.5-flash', price: { input: '0.30', cachedInput: '0.03', output: '2.50' }, source: GOOGLE },
    { model: 'gemini-2.5-flash-preview-*', price: { input: '0.30', cachedInput: '0.03', output: '2.50' }, source: GOOGLE },
    { model: 'gemini-2.5-flash-lite', price: { input: '0.10', cachedInput: '0.01', output: '0.40' }, source: GOOGLE },
    { model: 'gemini-2.5-flash-lite-preview-*', price: { input: '0.10', cachedInput: '0.01', output: '0.40' }, source: GOOGLE },
    { model: 'gemini-2.0-flash', price: { input: '0.10', cachedInput: '0.025', output: '0.40' }, source: GOOGLE },
    { model: 'gemini-2.0-flash-lite', price: { input: '0.075', output: '0.30' }, source: GOOGLE },

    // Amazon Nova on Bedrock (on-demand, US regions). Claude on Bedrock prices as Claude above
    // (a Bedrock id is matched as the model it names: model-pattern.ts canonicalModelId).
    { model: 'nova-premier', price: { input: '2.50', cachedInput: '0.625', output: '12.50' }, source: BEDROCK },
    { model: 'nova-pro', price: { input: '0.80', cachedInput: '0.20', output: '3.20' }, source: BEDROCK },
    { model: 'nova-lite', price: { input: '0.06', cachedInput: '0.015', output: '0.24' }, source: BEDROCK },
    { model: 'nova-micro', price: { input: '0.035', cachedInput: '0.00875', output: '0.14' }, source: BEDROCK },
  ].map((entry) => Object.freeze({ ...entry, price: Object.freeze(entry.price) })),
);
