import type { CompiledUsage } from '../policy/compiled-policy.js';
import type { AiApi, AiRoute } from '../usage/ai-api.js';
import { parseAiRequestBody, rewriteAiRequestBody, type RequestBodyChanges } from '../usage/request-body.js';
import type { AiBodyInput } from './decision-engine.js';
import type { Decision } from './decision.js';

export interface ReadAiBody {
  /** What the decision engine is told about the body. */
  readonly input: AiBodyInput;
  /**
   * The body to forward instead of the client's, when the service must change it: include_usage
   * turned on, a budget's output cap set, a budget's cheaper model; undefined = unchanged.
   */
  rewrite(decision: Decision): Buffer | undefined;
}

const UNCHANGED = () => undefined;

/**
 * Reads an AI API request body the same way for every adapter: size limit first, then the API's shape.
 * `route` is what the path said (AiPathMatcher.route); an API alone means the model is in the body.
 */
export function readAiBody(route: AiApi | AiRoute, body: Uint8Array, usage: CompiledUsage, options: { canRewrite: boolean }): ReadAiBody {
  const { api, pathModel, deployment, pathProblem } = typeof route === 'string' ? ({ api: route } as AiRoute) : route;
  if (pathProblem !== undefined) return { input: { problem: { tooLarge: false, message: pathProblem } }, rewrite: UNCHANGED };
  if (body.length === 0) return { input: { problem: { tooLarge: false, message: 'request body is empty: an AI API request needs a JSON body naming the model' } }, rewrite: UNCHANGED };
  if (body.length > usage.maxRequestBodyBytes) {
    return { input: { problem: { tooLarge: true, message: `request body is ${body.length} bytes; the limit is ${usage.maxRequestBodyBytes}` } }, rewrite: UNCHANGED };
  }
  // An Azure deployment serves the model the policy maps it to (else the one it is named after);
  // on the Azure APIs that name the deployment in the body (Responses), the body's model is one.
  const fromPath = pathModel !== undefined && deployment === true ? deploymentModel(pathModel, usage) : pathModel;
  const parsed = parseAiRequestBody(api, body, fromPath !== undefined ? { pathModel: fromPath } : deploymentInBody(api, body, usage));
  if (!parsed.ok) return { input: { problem: { tooLarge: false, message: parsed.problem.message } }, rewrite: UNCHANGED };
  if (!options.canRewrite) return { input: { request: parsed.request }, rewrite: UNCHANGED };
  const injectUsage = usage.injectStreamUsage && parsed.request.needsIncludeUsage;
  return {
    input: { request: parsed.request },
    rewrite(decision) {
      const changes: { -readonly [K in keyof RequestBodyChanges]: RequestBodyChanges[K] } = {};
      if (injectUsage) changes.includeUsage = true;
      if (decision.budget?.outputCap !== undefined) changes.outputCap = decision.budget.outputCap;
      if (decision.budget?.downgradedTo !== undefined) changes.model = decision.budget.downgradedTo;
      return Object.keys(changes).length > 0 ? rewriteAiRequestBody(api, parsed.json, changes) : undefined;
    },
  };
}

function deploymentModel(name: string, usage: CompiledUsage): string {
  return usage.azureDeployments.get(name) ?? usage.azureDeployments.get(name.toLowerCase()) ?? name;
}

/** azure.responses names its deployment in the body's model: the model is the deployment's. */
function deploymentInBody(api: AiApi, body: Uint8Array, usage: CompiledUsage): { pathModel: string } | undefined {
  if (api !== 'azure.responses' || usage.azureDeployments.size === 0) return undefined;
  const named = parseAiRequestBody(api, body);
  if (!named.ok) return undefined;
  const mapped = deploymentModel(named.request.model, usage);
  return mapped === named.request.model ? undefined : { pathModel: mapped };
}
