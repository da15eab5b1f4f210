/**
 * Prices per model pattern and the cost of a usage, in exact integer arithmetic.
 *
 * A price is USD per million tokens with at most 6 decimals; per token that is an integer
 * number of pico-USD (1e-12 USD), so costs are sums of bigint products — no float drift,
 * however many requests are added up.
 *
 * Which entry prices a model — the most specific pattern that matches it (see
 * usage/model-pattern.ts): the exact id, else the longest family (`claude-sonnet-4-5`
 * before `claude-sonnet`), else the glob with the most literal characters, else `*`.
 * Two globs with as many literal characters: the first listed wins. A model no pattern
 * matches has no price (undefined) — never a price of 0.
 */
import { GenopsError } from '../errors/genops-error.js';
import { modelFamilyCandidates, modelGlobToRegExp } from './model-pattern.js';
import { DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION } from './default-prices.js';
import { DEFAULT_MODEL_LIMITS, DEFAULT_SERVER_TOOL_PRICES } from './default-model-limits.js';
import type { TokenUsage } from './token-usage.js';
import type { PriceEntry } from './price-entry.js';

export type { ModelPrice, PriceEntry } from './price-entry.js';

export interface PriceTable {
  readonly version: string;
  priceOf(model: string): CompiledPrice | undefined;
  readonly entries: readonly PriceEntry[];
}

/** Per-token rates in pico-USD. */
export interface CompiledRates {
  readonly inputPico: bigint;
  readonly cachedInputPico: bigint;
  readonly cacheWritePico: bigint;
  readonly cacheWrite1hPico: bigint;
  readonly outputPico: bigint;
}

/** Prices in pico-USD per token (= micro-USD per million tokens): exact integers for prices with ≤ 6 decimals. */
export interface CompiledPrice extends CompiledRates {
  readonly pattern: string;
  readonly contextWindow: number | undefined;
  readonly maxOutput: number | undefined;
  /** Rates of a request whose input passes `above` tokens. */
  readonly longContext: (CompiledRates & { readonly above: number }) | undefined;
  /** Rates under service_tier priority. */
  readonly priority: CompiledRates;
}

/** A priority tier without listed prices is reserved and charged at this multiple (OpenAI's priority premium is at most 2×). */
export const PRIORITY_MULTIPLIER = 2n;

/** What the request asked for that changes its price. */
export interface PricingConditions {
  /** service_tier asked (or served, when the response says). */
  readonly serviceTier?: string | undefined;
  /** The 1-hour cache was asked for: cache writes not told apart are priced as 1-hour writes. */
  readonly cacheTtl?: '5m' | '1h' | undefined;
}

export interface Cost {
  readonly pico: bigint;
  /** Exact decimal, e.g. "0.0001234", trailing zeros trimmed. */
  readonly usd: string;
}

const PICO_PER_USD = 1_000_000_000_000n;
const MAX_DECIMALS = 6;

export function createPriceTable(entries: readonly PriceEntry[], version: string): PriceTable {
  const families = new Map<string, CompiledPrice>();
  const globs: { readonly regexp: RegExp; readonly literalLength: number; readonly price: CompiledPrice }[] = [];
  let everything: CompiledPrice | undefined;
  const seen = new Map<string, number>();

  entries.forEach((given, index) => {
    const entry = withModelLimits(given);
    const where = `pricing entry ${index + 1}${typeof entry?.model === 'string' ? ` (model "${entry.model}")` : ''}`;
    if (typeof entry?.model !== 'string' || entry.model.trim() === '') throw new GenopsError('invalid_policy', `${where}: "model" must be a non-empty model pattern`);
    const pattern = entry.model.trim().toLowerCase();
    const earlier = seen.get(pattern);
    if (earlier !== undefined) throw new GenopsError('invalid_policy', `${where}: the model pattern "${entry.model}" is already priced by pricing entry ${earlier + 1}`);
    seen.set(pattern, index);
    if (typeof entry.price !== 'object' || entry.price === null) throw new GenopsError('invalid_policy', `${where}: "price" must be an object with input and output prices`);
    const standard = ratesOf(entry.price, where);
    const { longContext, priority } = entry.price;
    const compiled: CompiledPrice = Object.freeze({
      pattern: entry.model.trim(),
      ...standard,
      contextWindow: tokenCount(entry.contextWindow, `${where}: contextWindow`),
      maxOutput: tokenCount(entry.maxOutput, `${where}: maxOutput`),
      longContext: longContext ? Object.freeze({ above: tokenCount(longContext.above, `${where}: longContext.above`)!, ...ratesOf(longContext, `${where}: longContext`) }) : undefined,
      priority: priority ? ratesOf({ ...priority, cacheWrite: entry.price.cacheWrite ?? priority.input }, `${where}: priority`) : scaled(standard, PRIORITY_MULTIPLIER),
    });
    if (pattern === '*') everything = compiled;
    else if (pattern.includes('*')) globs.push({ regexp: modelGlobToRegExp(pattern), literalLength: pattern.replaceAll('*', '').length, price: compiled });
    else families.set(pattern, compiled);
  });
  // Most literal characters first; Array.prototype.sort is stable, so equal globs keep their order.
  globs.sort((a, b) => b.literalLength - a.literalLength);

  // The answer per model string, computed once: the table is immutable and the models a service
  // sees are few. Bounded (cleared when full) so a client naming random models cannot grow it.
  const answers = new Map<string, CompiledPrice | null>();
  const lookup = (model: string): CompiledPrice | undefined => {
    if (families.size > 0) {
      for (const candidate of modelFamilyCandidates(model)) {
        const price = families.get(candidate);
        if (price !== undefined) return price;
      }
    }
    if (globs.length > 0) {
      const id = model.trim().toLowerCase();
      for (const glob of globs) if (glob.regexp.test(id)) return glob.price;
    }
    return everything;
  };

  return Object.freeze({
    version,
    entries: Object.freeze([...entries]),
    priceOf(model: string): CompiledPrice | undefined {
      const known = answers.get(model);
      if (known !== undefined) return known ?? undefined;
      const price = lookup(model);
      if (model.length > 256) return price;
      if (answers.size >= MAX_CACHED_MODELS) answers.clear();
      answers.set(model, price ?? null);
      return price;
    },
  });
}

const MAX_CACHED_MODELS = 1_000;

/**
 * Billing: uncached input (input − cached − cache writes) at the input price, cached input at
 * the cached price, cache writes at the cache-write price (1-hour writes at theirs), output
 * (reasoning included) at the output price — at the rates of the tier and context length that
 * apply: priority rates under service_tier priority, long-context rates when input passes the
 * model's threshold.
 */
export function costOf(usage: TokenUsage, price: CompiledPrice, conditions: PricingConditions = {}): Cost {
  const input = tokens(usage.input);
  const cached = min(tokens(usage.cachedInput), input);
  const cacheWrite = min(tokens(usage.cacheWrite), input - cached);
  const written1h = conditions.cacheTtl === '1h' ? cacheWrite : min(tokens(usage.cacheWrite1h ?? 0), cacheWrite);
  const uncached = input - cached - cacheWrite;
  const rates = ratesFor(price, input, conditions.serviceTier);
  const pico = uncached * rates.inputPico + cached * rates.cachedInputPico + (cacheWrite - written1h) * rates.cacheWritePico + written1h * rates.cacheWrite1hPico + tokens(usage.output) * rates.outputPico;
  return { pico, usd: formatPicoUsd(pico) };
}

/** The rates of a request with `inputTokens` of input under `serviceTier`: the priority premium applies on top of long context. */
export function ratesFor(price: CompiledPrice, inputTokens: bigint, serviceTier: string | undefined): CompiledRates {
  const long = price.longContext !== undefined && inputTokens > BigInt(price.longContext.above);
  const base: CompiledRates = long ? price.longContext! : price;
  if (serviceTier !== 'priority') return base;
  if (!long) return price.priority;
  // Long context under priority: the long-context rates with the priority premium of the standard ones.
  return scaledBy(base, price.priority, price);
}

function ratesOf(price: { input: string | number; output: string | number; cachedInput?: string | number | undefined; cacheWrite?: string | number | undefined; cacheWrite1h?: string | number | undefined }, where: string): CompiledRates {
  const inputPico = picoPerToken(price.input, `${where}: price "input"`);
  const cacheWritePico = price.cacheWrite === undefined ? inputPico : picoPerToken(price.cacheWrite, `${where}: price "cacheWrite"`);
  return Object.freeze({
    inputPico,
    cachedInputPico: price.cachedInput === undefined ? inputPico : picoPerToken(price.cachedInput, `${where}: price "cachedInput"`),
    cacheWritePico,
    cacheWrite1hPico: price.cacheWrite1h === undefined ? cacheWritePico : picoPerToken(price.cacheWrite1h, `${where}: price "cacheWrite1h"`),
    outputPico: picoPerToken(price.output, `${where}: price "output"`),
  });
}

function scaled(rates: CompiledRates, factor: bigint): CompiledRates {
  return Object.freeze({ inputPico: rates.inputPico * factor, cachedInputPico: rates.cachedInputPico * factor, cacheWritePico: rates.cacheWritePico * factor, cacheWrite1hPico: rates.cacheWrite1hPico * factor, outputPico: rates.outputPico * factor });
}

/** `rates` × (premium / standard), per rate, rounded up. */
function scaledBy(rates: CompiledRates, premium: CompiledRates, standard: CompiledRates): CompiledRates {
  const times = (value: bigint, high: bigint, low: bigint) => (low === 0n ? value * PRIORITY_MULTIPLIER : (value * high + low - 1n) / low);
  return Object.freeze({
    inputPico: times(rates.inputPico, premium.inputPico, standard.inputPico),
    cachedInputPico: times(rates.cachedInputPico, premium.cachedInputPico, standard.cachedInputPico),
    cacheWritePico: times(rates.cacheWritePico, premium.cacheWritePico, standard.cacheWritePico),
    cacheWrite1hPico: times(rates.cacheWrite1hPico, premium.cacheWrite1hPico, standard.cacheWrite1hPico),
    outputPico: times(rates.outputPico, premium.outputPico, standard.outputPico),
  });
}

function tokenCount(value: unknown, where: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new GenopsError('invalid_policy', `${where} must be a positive whole number of tokens (got ${JSON.stringify(value)})`);
  return value;
}

/** An exact decimal USD amount: "0", "0.0001234", "12.5" (no trailing zeros, no exponent). */
export function formatPicoUsd(pico: bigint): string {
  const negative = pico < 0n;
  const magnitude = negative ? -pico : pico;
  const whole = magnitude / PICO_PER_USD;
  const fraction = (magnitude % PICO_PER_USD).toString().padStart(12, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction.length > 0 ? `.${fraction}` : ''}`;
}

/** For Prometheus counters (float64): exact to about 1e-4 pico-USD below 1M USD. */
export function picoToUsdNumber(pico: bigint): number {
  return Number(pico / PICO_PER_USD) + Number(pico % PICO_PER_USD) / 1e12;
}

function tokens(count: number): bigint {
  return Number.isSafeInteger(count) && count > 0 ? BigInt(count) : 0n;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/** USD per million tokens → pico-USD per token: the decimal's digits shifted by 6 places, exactly. */
function picoPerToken(value: unknown, where: string): bigint {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new GenopsError('invalid_policy', `${where} must be a finite number of USD per million tokens (got ${value})`);
    text = String(value);
    // 1e-7 and similar print in exponent form; toFixed gives their plain digits (and the check below catches > 6 decimals).
    if (/e/i.test(text)) text = value.toFixed(20).replace(/0+$/, '').replace(/\.$/, '');
  } else if (typeof value === 'string') {
    text = value.trim();
  } else {
    throw new GenopsError('invalid_policy', `${where} must be a decimal number of USD per million tokens (got ${value === null ? 'null' : typeof value})`);
  }
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) throw new GenopsError('invalid_policy', `${where} must be a decimal number of USD per million tokens, such as "2.50" (got ${JSON.stringify(value)})`);
  const [, sign, whole, rawFraction = ''] = match;
  const fraction = rawFraction.replace(/0+$/, '');
  if (sign === '-' && /[1-9]/.test(`${whole}${fraction}`)) throw new GenopsError('invalid_policy', `${where} must not be negative (got ${JSON.stringify(value)})`);
  if (fraction.length > MAX_DECIMALS) throw new GenopsError('invalid_policy', `${where} has more than ${MAX_DECIMALS} decimal places (got ${JSON.stringify(value)}); prices are exact to one micro-dollar per million tokens`);
  return BigInt(whole!) * 1_000_000n + BigInt(fraction.padEnd(MAX_DECIMALS, '0'));
}

/** An entry with the fields it leaves out taken from the shipped model limits of its pattern (default-model-limits.ts). */
function withModelLimits(entry: PriceEntry): PriceEntry {
  const limits = typeof entry?.model === 'string' ? DEFAULT_MODEL_LIMITS[entry.model.trim().toLowerCase()] : undefined;
  if (!limits || typeof entry.price !== 'object' || entry.price === null) return entry;
  return {
    ...entry,
    contextWindow: entry.contextWindow ?? limits.contextWindow,
    maxOutput: entry.maxOutput ?? limits.maxOutput,
    price: {
      ...entry.price,
      ...(entry.price.cacheWrite1h === undefined && limits.cacheWrite1h !== undefined ? { cacheWrite1h: limits.cacheWrite1h } : {}),
      ...(entry.price.longContext === undefined && limits.longContext !== undefined ? { longContext: limits.longContext } : {}),
      ...(entry.price.priority === undefined && limits.priority !== undefined ? { priority: limits.priority } : {}),
    },
  };
}

/** USD per call of server-side tools, as pico-USD; a policy's spec.pricing.tools entries win. */
export function compileToolPrices(own: Readonly<Record<string, string | number>> = {}): ReadonlyMap<string, bigint> {
  const prices = new Map<string, bigint>();
  for (const [name, usd] of Object.entries({ ...DEFAULT_SERVER_TOOL_PRICES, ...own })) prices.set(name, picoPerToken(usd, `spec.pricing.tools.${name}`) * 1_000_000n);
  return prices;
}

/** The shipped table (src/usage/default-prices.ts); a policy's spec.pricing replaces it. */
export const DEFAULT_PRICE_TABLE: PriceTable = createPriceTable(DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION);
