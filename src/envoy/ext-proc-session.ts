import { GenopsError } from '../errors/genops-error.js';
import { denialBody, isAllowed, type Decision } from '../governance/decision.js';
import type { HeaderLookup } from '../governance/governance-context.js';
import type { Governor } from '../governance/governor.js';
import type { DecisionReporter } from './decision-reporter.js';
import { lookupFromHeaderMap } from './header-lookup.js';
import type { HeaderValueOption, ProcessingRequest, ProcessingResponse, StructValue } from './envoy-messages.js';
import { clientHeaders, denialHeaders, headersToRemove, upstreamHeaders } from './governance-headers.js';

/** The attributes namespace Envoy's ext_proc filter fills from `request_attributes`. */
const EXT_PROC_ATTRIBUTES = 'envoy.filters.http.ext_proc';
const PRINCIPAL_ATTRIBUTES = ['source.principal', 'connection.uri_san_peer_certificate'];

export interface ExtProcSession {
  /**
   * The one reply to one ProcessingRequest, of the matching kind; undefined
   * when Envoy expects none (observability mode).
   */
  handle(request: ProcessingRequest): ProcessingResponse | undefined | Promise<ProcessingResponse | undefined>;
}

export interface ExtProcSessionFactory {
  open(): ExtProcSession;
}

/**
 * The state of one ext_proc stream, that is one HTTP request: the decision
 * made on its request headers is remembered for its response headers.
 */
export function createExtProcSessionFactory(options: { governor: Governor; reporter: DecisionReporter; now: () => number }): ExtProcSessionFactory {
  const { governor, reporter, now } = options;
  return {
    open() {
      let decision: Decision | undefined;
      return {
        handle(request) {
          const reply = replyTo(request);
          if (!request.observability_mode) return reply;
          return reply instanceof Promise ? reply.then(() => undefined) : undefined;
        },
      };

      function decided(settled: Decision, startedAt: number, headers: HeaderLookup): ProcessingResponse {
        decision = settled;
        const reply = isAllowed(settled) ? continueUpstream(settled) : immediateDenial(settled);
        reporter.report('ext_proc', settled, startedAt, headers);
        return reply;
      }

      function replyTo(request: ProcessingRequest): ProcessingResponse | Promise<ProcessingResponse> {
        if (request.request_headers) {
          const startedAt = now();
          const headers = lookupFromHeaderMap(request.request_headers.headers);
          const evaluated = governor.evaluate({ headers, principal: principalOf(request.attributes), path: headers(':path') });
          return evaluated instanceof Promise ? evaluated.then((settled) => decided(settled, startedAt, headers)) : decided(evaluated, startedAt, headers);
        }
        if (request.response_headers) {
          const set_headers = decision ? clientHeaders(decision).map(overwrite) : [];
          return { response_headers: { response: { header_mutation: { set_headers } } } };
        }
        if (request.request_body) return { request_body: { response: {} } };
        if (request.response_body) return { response_body: { response: {} } };
        if (request.request_trailers) return { request_trailers: {} };
        if (request.response_trailers) return { response_trailers: {} };
        throw new GenopsError('malformed_request', 'ProcessingRequest carries none of the request kinds this service knows');
      }
    },
  };
}

function continueUpstream(decision: Decision): ProcessingResponse {
  return {
    request_headers: {
      response: {
        status: 'CONTINUE',
        header_mutation: { set_headers: upstreamHeaders(decision).map(overwrite), remove_headers: headersToRemove(decision) },
        clear_route_cache: true,
      },
    },
  };
}

function immediateDenial(decision: Decision): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: decision.httpStatus },
      headers: { set_headers: denialHeaders(decision).map(overwrite) },
      body: Buffer.from(denialBody(decision), 'utf8'),
      details: `genops_${decision.reasonCode ?? 'denied'}`,
    },
  };
}

/** ext_proc reads raw_value only: `value` alone arrives empty, and both together is rejected. */
function overwrite([key, value]: [string, string]): HeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value, 'utf8') }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

function principalOf(attributes: Record<string, StructValue | undefined> | undefined): string | undefined {
  const fields = attributes?.[EXT_PROC_ATTRIBUTES]?.fields;
  if (!fields) return undefined;
  for (const name of PRINCIPAL_ATTRIBUTES) {
    const value = fields[name]?.stringValue ?? fields[name]?.string_value;
    if (value) return value;
  }
  return undefined;
}
