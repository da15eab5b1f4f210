/**
 * Prices per model pattern and the cost of a usage, in exact integer arithmetic.
 *
 * A price is USD per million tokens with at most 6 decimals; per token that is an integer
 * number of pico-USD (1e-12 USD), so costs are sums of bigint products — no float drift,
 * however many requests are added up.
 *
 * Which entry prices a model — the most specific pattern that matches it (see
 * policy/model-pattern.ts): the exact id, else the longest family (`claude-sonnet-4-5`
 * before `claude-sonnet`), else the glob with the most literal characters, else `*`.
 * Two globs with as many literal characters: the first listed wins. A model no pattern
 * matches has no price (undefined) — never a price of 0.
 */
import { GenopsError } from '../errors/genops-error.js';
import { modelFamilyCandidates, modelGlobToRegExp } from './model-pattern.js';
import { DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION } from './default-prices.js';
import type { TokenUsage } from './token-usage.js';

/** USD per million tokens, as decimal strings or numbers from the policy; converted exactly. */
export interface ModelPrice {
  readonly input: string | number;
  /** Default: the input price. */
  readonly cachedInput?: string | number;
  /** Default: the input price. */
  readonly cacheWrite?: string | number;
  readonly output: string | number;
}

export interface PriceEntry {
  /** Model pattern, see policy/model-pattern.ts. */
  readonly model: string;
  readonly price: ModelPrice;
  readonly source?: string;
}

export interface PriceTable {
  readonly version: string;
  priceOf(model: string): CompiledPrice | undefined;
  readonly entries: readonly PriceEntry[];
}

/** Prices in pico-USD per token (= micro-USD per million tokens): exact integers for prices with ≤ 6 decimals. */
export interface CompiledPrice {
  readonly pattern: string;
  readonly inputPico: bigint;
  readonly cachedInputPico: bigint;
  readonly cacheWritePico: bigint;
  readonly outputPico: bigint;
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

  entries.forEach((entry, index) => {
    const where = `pricing entry ${index + 1}${typeof entry?.model === 'string' ? ` (model "${entry.model}")` : ''}`;
    if (typeof entry?.model !== 'string' || entry.model.trim() === '') throw new GenopsError('invalid_policy', `${where}: "model" must be a non-empty model pattern`);
    const pattern = entry.model.trim().toLowerCase();
    const earlier = seen.get(pattern);
    if (earlier !== undefined) throw new GenopsError('invalid_policy', `${where}: the model pattern "${entry.model}" is already priced by pricing entry ${earlier + 1}`);
    seen.set(pattern, index);
    if (typeof entry.price !== 'object' || entry.price === null) throw new GenopsError('invalid_policy', `${where}: "price" must be an object with input and output prices`);
    const inputPico = picoPerToken(entry.price.input, `${where}: price "input"`);
    const compiled: CompiledPrice = Object.freeze({
      pattern: entry.model.trim(),
      inputPico,
      cachedInputPico: entry.price.cachedInput === undefined ? inputPico : picoPerToken(entry.price.cachedInput, `${where}: price "cachedInput"`),
      cacheWritePico: entry.price.cacheWrite === undefined ? inputPico : picoPerToken(entry.price.cacheWrite, `${where}: price "cacheWrite"`),
      outputPico: picoPerToken(entry.price.output, `${where}: price "output"`),
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
 * the cached price, cache writes at the cache-write price, output (reasoning included) at the output price.
 */
export function costOf(usage: TokenUsage, price: CompiledPrice): Cost {
  const input = tokens(usage.input);
  const cached = min(tokens(usage.cachedInput), input);
  const cacheWrite = min(tokens(usage.cacheWrite), input - cached);
  const uncached = input - cached - cacheWrite;
  const pico = uncached * price.inputPico + cached * price.cachedInputPico + cacheWrite * price.cacheWritePico + tokens(usage.output) * price.outputPico;
  return { pico, usd: formatPicoUsd(pico) };
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

/** The shipped table (src/usage/default-prices.ts); a policy's spec.pricing replaces it. */
export const DEFAULT_PRICE_TABLE: PriceTable = createPriceTable(DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION);
