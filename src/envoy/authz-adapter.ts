import { readAiBody } from '../governance/ai-body.js';
import { classifyRequest } from '../governance/request-class.js';
import type { AiRoute } from '../usage/ai-api.js';
import type { AiBodyInput } from '../governance/decision-engine.js';
import { denialBody, isAllowed, type Decision } from '../governance/decision.js';
import type { CompiledPolicy } from '../policy/compiled-policy.js';
import type { Governor } from '../governance/governor.js';
import type { HeaderLookup } from '../governance/governance-context.js';
import type { DecisionReporter } from './decision-reporter.js';
import type { CheckRequest, CheckResponse, HeaderMap, HeaderValueOption, HttpRequestAttributes } from './envoy-messages.js';
import { lookupFromHeaderMap, lookupFromRecord } from './header-lookup.js';
import { aiUpstreamHeadersToRemove, clientHeaders, denialHeaders, headersToRemove, upstreamHeaders } from './governance-headers.js';
import { JWT_AUTHN_NAMESPACE, metadataNamespace } from './struct-to-json.js';

/** google.rpc.Code values Envoy reads from CheckResponse.status. */
const RPC_OK = 0;
const RPC_INVALID_ARGUMENT = 3;
const RPC_PERMISSION_DENIED = 7;
const RPC_RESOURCE_EXHAUSTED = 8;
const RPC_UNAUTHENTICATED = 16;

export interface AuthzAdapter {
  check(request: CheckRequest): CheckResponse | Promise<CheckResponse>;
}

/**
 * envoy.service.auth.v3.Authorization/Check: CheckRequest in, plain decision
 * input to the engine, the decision back out as a CheckResponse.
 */
export function createAuthzAdapter(options: { governor: Governor; reporter: DecisionReporter; policy: () => CompiledPolicy; now: () => number }): AuthzAdapter {
  const { governor, reporter, now, policy } = options;
  const respond = (decision: Decision, startedAt: number, headers: HeaderLookup): CheckResponse => {
    const response = toCheckResponse(decision);
    reporter.report('authz', decision, startedAt, headers);
    return response;
  };
  return {
    check(request) {
      const startedAt = now();
      const http = request.attributes?.request?.http;
      const headers = http ? headerLookupOf(http.headers, http.header_map) : () => undefined;
      const path = http?.path || undefined;
      const shape = http ? classifyRequest({ method: http.method || undefined, path, hasBody: carriesBody(http, headers) }, policy().usage) : undefined;
      const decision = governor.evaluate({
        headers,
        // proto3 cannot tell an empty string from an absent one: both are absent here.
        principal: request.attributes?.source?.principal || undefined,
        path,
        malformed: http ? undefined : 'CheckRequest has no attributes.request.http',
        ai: shape?.kind === 'ai' ? aiBodyOf(shape.route, http!, headers, policy()) : undefined,
        unknownAiApi: shape?.kind === 'unknown' ? shape.message : undefined,
        jwtMetadata: metadataNamespace(request.attributes?.metadata_context, JWT_AUTHN_NAMESPACE),
      });
      return decision instanceof Promise ? decision.then((settled) => respond(settled, startedAt, headers)) : respond(decision, startedAt, headers);
    },
  };
}

/**
 * The body of an AI API request, as with_request_body sends it. ext_authz cannot change the body,
 * so stream usage is not injected here (the ext_proc adapter does it).
 */
function aiBodyOf(route: AiRoute, http: HttpRequestAttributes, headers: HeaderLookup, policy: CompiledPolicy): AiBodyInput {
  // with_request_body.allow_partial_message sends the first max_request_bytes and marks it.
  if (headers('x-envoy-auth-partial-body') === 'true') {
    return { problem: { tooLarge: true, message: `request body is larger than the ${policy.usage.maxRequestBodyBytes} bytes this service reads` } };
  }
  const body = http.raw_body && http.raw_body.length > 0 ? http.raw_body : http.body ? Buffer.from(http.body, 'utf8') : EMPTY;
  if (body.length === 0 && Number(headers('content-length')) > 0) {
    return { problem: { tooLarge: false, message: 'Envoy did not send the request body: the ext_authz filter needs with_request_body on AI API paths' } };
  }
  return readAiBody(route, body, policy.usage, { canRewrite: false, contentType: headers('content-type') }).input;
}

const EMPTY = Buffer.alloc(0);

/** with_request_body sends the body; without it (or past its limit) the headers still tell. */
function carriesBody(http: HttpRequestAttributes, headers: HeaderLookup): boolean {
  if ((http.raw_body && http.raw_body.length > 0) || (http.body && http.body.length > 0)) return true;
  const length = headers('content-length');
  if (length !== undefined && length.trim() !== '0') return true;
  return headers('transfer-encoding') !== undefined;
}

export function toCheckResponse(decision: Decision): CheckResponse {
  if (isAllowed(decision)) {
    const headersToStrip = headersToRemove(decision);
    if (decision.ai) headersToStrip.push(...aiUpstreamHeadersToRemove);
    return {
      status: { code: RPC_OK },
      ok_response: {
        headers: upstreamHeaders(decision).map(overwrite),
        headers_to_remove: headersToStrip,
        response_headers_to_add: clientHeaders(decision).map(overwrite),
      },
    };
  }
  return {
    status: { code: rpcCodeOf(decision.httpStatus), message: decision.reasonCode ?? '' },
    denied_response: {
      status: { code: decision.httpStatus },
      headers: denialHeaders(decision).map(overwrite),
      body: denialBody(decision),
    },
  };
}

function rpcCodeOf(httpStatus: number): number {
  if (httpStatus === 400 || httpStatus === 413) return RPC_INVALID_ARGUMENT;
  if (httpStatus === 429) return RPC_RESOURCE_EXHAUSTED;
  if (httpStatus === 401) return RPC_UNAUTHENTICATED;
  return RPC_PERMISSION_DENIED;
}

/** One shared BoolValue: only read by the encoder, it need not be made per header. */
const APPEND_FALSE = Object.freeze({ value: false });

/** ext_authz reads HeaderValue.value; append:false overwrites on every Envoy version. */
function overwrite([key, value]: [string, string]): HeaderValueOption {
  return { header: { key, value }, append: APPEND_FALSE };
}

function headerLookupOf(headers: Record<string, string> | undefined, headerMap: HeaderMap | undefined): HeaderLookup {
  // Envoy sends `headers` by default and `header_map` when the filter sets encode_raw_headers.
  return headerMap?.headers && headerMap.headers.length > 0 ? lookupFromHeaderMap(headerMap) : lookupFromRecord(headers);
}
