import type { PriceEntry } from './pricing.js';

/** The date the default prices were checked against the providers' pricing pages. */
export const DEFAULT_PRICES_VERSION = '2026-12-01';

/** Filled in the next commit. */
export const DEFAULT_PRICE_ENTRIES: readonly PriceEntry[] = Object.freeze([]);
