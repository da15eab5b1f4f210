import { DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION } from './default-prices.js';
import type { TokenUsage } from './token-usage.js';

/** USD per million tokens, as decimal strings or numbers from the policy; converted exactly. */
export interface ModelPrice {
  readonly input: string | number;
  readonly cachedInput?: string | number;
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

export function createPriceTable(entries: readonly PriceEntry[], version: string): PriceTable {
  // Placeholder until the implementation commit: prices nothing.
  return { version, entries, priceOf: () => undefined };
}

export function costOf(usage: TokenUsage, price: CompiledPrice): Cost {
  void usage;
  void price;
  throw new Error('costOf: not implemented yet');
}

export function formatPicoUsd(pico: bigint): string {
  void pico;
  throw new Error('formatPicoUsd: not implemented yet');
}

export function picoToUsdNumber(pico: bigint): number {
  void pico;
  throw new Error('picoToUsdNumber: not implemented yet');
}

/** The shipped table (src/usage/default-prices.ts); a policy's spec.pricing replaces it. */
export const DEFAULT_PRICE_TABLE: PriceTable = createPriceTable(DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION);
