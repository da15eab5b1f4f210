import type { CompiledUsage } from '../policy/compiled-policy.js';
import type { AiApi } from '../usage/ai-api.js';
import { parseAiRequestBody, rewriteAiRequestBody } from '../usage/request-body.js';
import type { AiBodyInput } from './decision-engine.js';

export interface ReadAiBody {
  /** What the decision engine is told about the body. */
  readonly input: AiBodyInput;
  /** The body to forward instead of the client's, when the service must change it (include_usage); undefined = unchanged. */
  rewrite(): Buffer | undefined;
}

const UNCHANGED = () => undefined;

/** Reads an AI API request body the same way for every adapter: size limit first, then the API's shape. */
export function readAiBody(api: AiApi, body: Uint8Array, usage: CompiledUsage, options: { canRewrite: boolean }): ReadAiBody {
  if (body.length === 0) return { input: { problem: { tooLarge: false, message: 'request body is empty: an AI API request needs a JSON body naming the model' } }, rewrite: UNCHANGED };
  if (body.length > usage.maxRequestBodyBytes) {
    return { input: { problem: { tooLarge: true, message: `request body is ${body.length} bytes; the limit is ${usage.maxRequestBodyBytes}` } }, rewrite: UNCHANGED };
  }
  const parsed = parseAiRequestBody(api, body);
  if (!parsed.ok) return { input: { problem: { tooLarge: false, message: parsed.problem.message } }, rewrite: UNCHANGED };
  const injectUsage = options.canRewrite && usage.injectStreamUsage && parsed.request.needsIncludeUsage;
  return {
    input: { request: parsed.request },
    rewrite: injectUsage ? () => rewriteAiRequestBody(api, parsed.json, { includeUsage: true }) : UNCHANGED,
  };
}
