import type { CompiledUsage } from '../policy/compiled-policy.js';
import type { AiApi, AiRoute } from '../usage/ai-api.js';
import { jsonStructureProblem } from '../usage/json-structure.js';
import { parseAiRequestBody, rewriteAiRequestBody, type RequestBodyChanges } from '../usage/request-body.js';
import type { AiBodyInput } from './decision-engine.js';
import type { HeaderLookup } from './governance-context.js';
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
export function readAiBody(route: AiApi | AiRoute, body: Uint8Array, usage: CompiledUsage, options: { canRewrite: boolean; signed?: boolean | undefined; contentType?: string | undefined }): ReadAiBody {
  const { api, pathModel, deployment, pathProblem } = typeof route === 'string' ? ({ api: route } as AiRoute) : route;
  if (pathProblem !== undefined) return { input: { problem: { tooLarge: false, message: pathProblem } }, rewrite: UNCHANGED };
  const formProblem = formContentProblem(options.contentType);
  if (formProblem !== undefined) return { input: { problem: { tooLarge: false, message: formProblem } }, rewrite: UNCHANGED };
  if (body.length === 0) return { input: { problem: { tooLarge: false, message: 'request body is empty: an AI API request needs a JSON body naming the model' } }, rewrite: UNCHANGED };
  if (body.length > usage.maxRequestBodyBytes) {
    return { input: { problem: { tooLarge: true, message: `request body is ${body.length} bytes; the limit is ${usage.maxRequestBodyBytes}` } }, rewrite: UNCHANGED };
  }
  const structure = jsonStructureProblem(body);
  if (structure) return { input: { problem: { tooLarge: false, message: structure } }, rewrite: UNCHANGED };
  // An Azure deployment serves the model the policy maps it to (else the one it is named after);
  // on the Azure APIs that name the deployment in the body (Responses), the body's model is one.
  const fromPath = pathModel !== undefined && deployment === true ? deploymentModel(pathModel, usage) : pathModel;
  const parsed = parseAiRequestBody(api, body, fromPath !== undefined ? { pathModel: fromPath } : deploymentInBody(api, body, usage));
  if (!parsed.ok) return { input: { problem: { tooLarge: false, message: parsed.problem.message } }, rewrite: UNCHANGED };
  // A signed body (AWS SigV4) cannot change: any rewrite would break its signature upstream.
  if (options.signed === true) return { input: { request: { ...parsed.request, signedBody: true } }, rewrite: UNCHANGED };
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

/**
 * A body labelled as a form is read as fields by servers that parse by content type: the JSON
 * `{"a":"&model=claude-opus-4-1&b=","model":"claude-haiku-4-5"}` is opus there and haiku to
 * JSON.parse. No AI API the service reads takes a form, so such a label is malformed.
 */
function formContentProblem(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const media = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (media !== 'application/x-www-form-urlencoded' && !media.startsWith('multipart/')) return undefined;
  return `request content-type is ${media}: an AI API request body must be JSON (application/json), never a form that other readers would take fields from`;
}

/** The model an Azure OpenAI deployment serves: the policy's map, else the deployment's own name. */
export function deploymentModel(name: string, usage: CompiledUsage): string {
  return usage.azureDeployments.get(name.toLowerCase()) ?? name;
}

/** azure.responses names its deployment in the body's model: the model is the deployment's. */
function deploymentInBody(api: AiApi, body: Uint8Array, usage: CompiledUsage): { pathModel: string } | undefined {
  if (api !== 'azure.responses' || usage.azureDeployments.size === 0) return undefined;
  const named = parseAiRequestBody(api, body);
  if (!named.ok) return undefined;
  const mapped = deploymentModel(named.request.model, usage);
  return mapped === named.request.model ? undefined : { pathModel: mapped };
}

/**
 * True when the client signed the request body with AWS Signature V4 (the AWS SDKs do for
 * Bedrock): the signature covers the body's hash unless it says UNSIGNED-PAYLOAD. The shipped
 * configs never forward `authorization` to the service, so `x-amz-date` (which SigV4 signs and
 * bearer-token clients do not send) tells it; a presigned URL carries X-Amz-Signature instead.
 */
export function isBodySigned(headers: HeaderLookup): boolean {
  if (headers('x-amz-content-sha256') === 'UNSIGNED-PAYLOAD') return false;
  if (headers('x-amz-date') !== undefined) return true;
  if (headers('authorization')?.startsWith('AWS4-HMAC-SHA256')) return true;
  return /[?&]x-amz-signature=/i.test(headers(':path') ?? '');
}
