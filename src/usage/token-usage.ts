/** Token counts, all non-negative integers. input includes cachedInput and cacheWrite; output includes reasoning. */
export interface TokenUsage {
  readonly input: number;
  readonly cachedInput: number;
  readonly cacheWrite: number;
  readonly output: number;
  readonly reasoning: number;
  /** The part of cacheWrite written to the 1-hour cache (Anthropic cache_creation.ephemeral_1h_input_tokens), when told. */
  readonly cacheWrite1h?: number;
  /** Calls of server-side tools the provider ran, by tool name (Anthropic usage.server_tool_use), when told. */
  readonly serverToolCalls?: Readonly<Record<string, number>>;
}

export const TOKEN_TYPES = Object.freeze(['input', 'cached_input', 'cache_write', 'output', 'reasoning'] as const);
export type TokenType = (typeof TOKEN_TYPES)[number];

export function tokensByType(usage: TokenUsage): Readonly<Record<TokenType, number>> {
  return {
    input: usage.input,
    cached_input: usage.cachedInput,
    cache_write: usage.cacheWrite,
    output: usage.output,
    reasoning: usage.reasoning,
  };
}

export const NO_USAGE: TokenUsage = Object.freeze({ input: 0, cachedInput: 0, cacheWrite: 0, output: 0, reasoning: 0 });
