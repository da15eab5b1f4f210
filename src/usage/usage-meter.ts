import type { TokenUsage } from './token-usage.js';

/** What a response body told of its usage: the provider's own counts when seen, else an estimate. */
export interface UsageReport {
  /** The provider's own usage, when seen (for an Anthropic stream cut short: the counts message_start gave). */
  readonly usage: TokenUsage | undefined;
  /** The response's model field when seen. */
  readonly modelServed: string | undefined;
  /** Output tokens estimated from the streamed/returned text (chars ÷ 4, rounded up) — used when usage never came. */
  readonly estimatedOutputTokens: number;
  /** true when the provider's final usage was seen (stream finished properly, or JSON body complete). */
  readonly complete: boolean;
  /** Provider-reported error in the body/stream (e.g. SSE `error` event, Responses `response.failed`), if any. */
  readonly providerError: string | undefined;
}

export interface UsageMeter {
  push(chunk: Uint8Array): void;
  end(): UsageReport;
  /** Report so far (for a stream that ended badly). */
  snapshot(): UsageReport;
  /** Bytes the meter holds right now (buffers and captures): bounded whatever the body size. */
  readonly retainedBytes: number;
}
