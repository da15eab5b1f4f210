/** USD per million tokens, as decimal strings or numbers from the policy; converted exactly. */
export interface ModelPrice {
  readonly input: string | number;
  /** Default: the input price. */
  readonly cachedInput?: string | number;
  /** Default: the input price. */
  readonly cacheWrite?: string | number;
  readonly output: string | number;
  /** Anthropic's 1-hour cache writes; default: the cacheWrite price. */
  readonly cacheWrite1h?: string | number;
  /** Prices of the whole request when its input passes `above` tokens (e.g. Claude Sonnet 4.5 past 200K). */
  readonly longContext?: { readonly above: number; readonly input: string | number; readonly output: string | number; readonly cachedInput?: string | number; readonly cacheWrite?: string | number; readonly cacheWrite1h?: string | number };
  /** service_tier: priority; default: PRIORITY_MULTIPLIER × the standard prices (the largest premium a provider lists). */
  readonly priority?: { readonly input: string | number; readonly output: string | number; readonly cachedInput?: string | number };
}

export interface PriceEntry {
  /** Model pattern, see usage/model-pattern.ts. */
  readonly model: string;
  readonly price: ModelPrice;
  readonly source?: string;
  /** Most input tokens one model call reads (the context window); bounds inputs the body does not carry. */
  readonly contextWindow?: number;
  /** Most output tokens one call can produce. */
  readonly maxOutput?: number;
}
