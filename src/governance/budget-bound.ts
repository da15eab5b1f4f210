/**
 * The worst case of one AI request: an upper bound of what the provider can bill for it.
 *
 * - Text input: the body's bytes (every token covers at least one byte).
 * - Inputs the body only points at (a previous response, a conversation, files, media): the
 *   model's context window — no call reads more.
 * - Server-side tools: each call's price, plus a context window of input per call (its results
 *   are read in another model pass), times the most calls the request allows.
 * - Output: the cap × n.
 * - At the rates that can apply: long-context rates when the input bound passes the model's
 *   threshold, priority rates under service_tier priority, cache-write rates (1-hour ones when
 *   asked) when the body asks for caching.
 * A request whose bound cannot be known (no window for the model, a tool without a maximum of
 * calls or without a price) is unreservable: the caller refuses it under an enforced budget.
 */
import { FORMAT_OF } from '../usage/ai-api.js';
import { ratesFor, type CompiledPrice } from '../usage/pricing.js';
import { NO_BOUND_EXTRAS } from '../usage/request-bound.js';
import type { AiRequest } from '../usage/request-body.js';

export type RequestBoundResult =
  | {
      readonly ok: true;
      /** Input (and tool) part of the worst case, pico-USD. */
      readonly fixedPico: bigint;
      /** Of which server-tool call prices, pico-USD. */
      readonly toolsPico: bigint;
      /** pico-USD per output token, all choices together. */
      readonly outputPicoPerToken: bigint;
      /** The largest output cap the model takes (undefined: not known). */
      readonly maxOutput: number | undefined;
    }
  | { readonly ok: false; readonly reason: string };

export function requestBound(options: { ai: AiRequest; bodyBytes: number; model: string; price: CompiledPrice; toolPrices: ReadonlyMap<string, bigint> }): RequestBoundResult {
  const { ai, bodyBytes, model, price, toolPrices } = options;
  const bound = ai.bound ?? NO_BOUND_EXTRAS;
  const window = price.contextWindow;
  const needsWindow = bound.outsideInputs.length > 0 || bound.serverTools.length > 0;
  if (needsWindow && window === undefined) {
    const what = bound.outsideInputs.length > 0 ? `carries input outside its body (${bound.outsideInputs.join(', ')})` : `uses server-side tools (${bound.serverTools.map((tool) => tool.name).join(', ')})`;
    return { ok: false, reason: `the request ${what}, and model ${model} has no known context window to bound it (add contextWindow to its spec.pricing entry)` };
  }
  let inputTokens = BigInt(Math.max(0, bodyBytes));
  if (bound.outsideInputs.length > 0 && BigInt(window!) > inputTokens) inputTokens = BigInt(window!);
  let toolsPico = 0n;
  for (const tool of bound.serverTools) {
    if (tool.maxCalls === undefined) return { ok: false, reason: `server-side tool ${tool.name} is used with no maximum number of calls (${maximumField(ai.api, tool.name)}), so the request has no upper bound` };
    const perCall = toolPrices.get(tool.name);
    if (perCall === undefined) return { ok: false, reason: `server-side tool ${tool.name} has no price (add it to spec.pricing.tools)` };
    toolsPico += BigInt(tool.maxCalls) * perCall;
    inputTokens += BigInt(tool.maxCalls) * BigInt(window!);
  }
  const rates = ratesFor(price, inputTokens, bound.serviceTier);
  let inputRate = rates.inputPico;
  if (bound.cacheTtl !== undefined) {
    const write = bound.cacheTtl === '1h' ? rates.cacheWrite1hPico : rates.cacheWritePico;
    if (write > inputRate) inputRate = write;
  }
  return {
    ok: true,
    fixedPico: inputTokens * inputRate + toolsPico,
    toolsPico,
    outputPicoPerToken: rates.outputPico * BigInt(Math.max(1, ai.n)),
    maxOutput: price.maxOutput,
  };
}

function maximumField(api: AiRequest['api'], tool: string): string {
  const format = FORMAT_OF[api];
  const anthropic = format === 'anthropic.messages' || format === 'bedrock.invoke';
  if (tool === 'mcp' && anthropic) return 'mcp_servers cannot be given one';
  if (format === 'openai.responses') return 'set max_tool_calls';
  if (anthropic) return `set max_uses on the ${tool} tool`;
  return 'the API has no such setting';
}
