import { denialBody, isAllowed, type Decision } from '../governance/decision.js';
import type { Governor } from '../governance/governor.js';
import type { HeaderLookup } from '../governance/governance-context.js';
import type { DecisionReporter } from './decision-reporter.js';
import type { CheckRequest, CheckResponse, HeaderMap, HeaderValueOption } from './envoy-messages.js';
import { lookupFromHeaderMap, lookupFromRecord } from './header-lookup.js';
import { clientHeaders, denialHeaders, headersToRemove, upstreamHeaders } from './governance-headers.js';

/** google.rpc.Code values Envoy reads from CheckResponse.status. */
const RPC_OK = 0;
const RPC_INVALID_ARGUMENT = 3;
const RPC_PERMISSION_DENIED = 7;
const RPC_RESOURCE_EXHAUSTED = 8;

export interface AuthzAdapter {
  check(request: CheckRequest): CheckResponse | Promise<CheckResponse>;
}

/**
 * envoy.service.auth.v3.Authorization/Check: CheckRequest in, plain decision
 * input to the engine, the decision back out as a CheckResponse.
 */
export function createAuthzAdapter(options: { governor: Governor; reporter: DecisionReporter; now: () => number }): AuthzAdapter {
  const { governor, reporter, now } = options;
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
      const decision = governor.evaluate({
        headers,
        // proto3 cannot tell an empty string from an absent one: both are absent here.
        principal: request.attributes?.source?.principal || undefined,
        path: http?.path || undefined,
        malformed: http ? undefined : 'CheckRequest has no attributes.request.http',
      });
      return decision instanceof Promise ? decision.then((settled) => respond(settled, startedAt, headers)) : respond(decision, startedAt, headers);
    },
  };
}

export function toCheckResponse(decision: Decision): CheckResponse {
  if (isAllowed(decision)) {
    return {
      status: { code: RPC_OK },
      ok_response: {
        headers: upstreamHeaders(decision).map(overwrite),
        headers_to_remove: headersToRemove(decision),
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
  if (httpStatus === 400) return RPC_INVALID_ARGUMENT;
  if (httpStatus === 429) return RPC_RESOURCE_EXHAUSTED;
  return RPC_PERMISSION_DENIED;
}

/** ext_authz reads HeaderValue.value; append:false overwrites on every Envoy version. */
function overwrite([key, value]: [string, string]): HeaderValueOption {
  return { header: { key, value }, append: { value: false } };
}

function headerLookupOf(headers: Record<string, string> | undefined, headerMap: HeaderMap | undefined): HeaderLookup {
  // Envoy sends `headers` by default and `header_map` when the filter sets encode_raw_headers.
  return headerMap?.headers && headerMap.headers.length > 0 ? lookupFromHeaderMap(headerMap) : lookupFromRecord(headers);
}
