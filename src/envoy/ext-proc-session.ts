import { GenopsError } from '../errors/genops-error.js';
import { isBodySigned, readAiBody } from '../governance/ai-body.js';
import { classifyRequest } from '../governance/request-class.js';
import type { AiBodyInput } from '../governance/decision-engine.js';
import { denialBody, isAllowed, type Decision } from '../governance/decision.js';
import type { HeaderLookup } from '../governance/governance-context.js';
import type { Governor } from '../governance/governor.js';
import { exchangeOutcome, UPSTREAM_RESPONSE_MARK, type FinishedExchange } from '../governance/usage-accounting.js';
import type { CompiledPolicy } from '../policy/compiled-policy.js';
import type { AiApi, AiRoute } from '../usage/ai-api.js';
import { createUsageMeter, type UsageMeter } from '../usage/response-usage.js';
import type { DecisionReporter } from './decision-reporter.js';
import { createMeteredExchanges, type MeteredExchanges } from './metered-exchanges.js';
import { lookupFromHeaderMap } from './header-lookup.js';
import type { CommonResponse, HeaderValueOption, ProcessingMode, ProcessingRequest, ProcessingResponse, StructValue } from './envoy-messages.js';
import type { ProtoStruct } from './struct-to-json.js';
import { aiUpstreamHeadersToRemove, clientHeaders, denialHeaders, headersToRemove, upstreamHeaders } from './governance-headers.js';
import { JWT_AUTHN_NAMESPACE, metadataNamespace } from './struct-to-json.js';

/** The attributes namespace Envoy's ext_proc filter fills from `request_attributes`. */
const EXT_PROC_ATTRIBUTES = 'envoy.filters.http.ext_proc';
const PRINCIPAL_ATTRIBUTES = ['source.principal', 'connection.uri_san_peer_certificate'];
const EMPTY = Buffer.alloc(0);

/**
 * The filter's static mode buffers request bodies (so a filter that ignored overrides would still
 * hold every request until a decision: fail closed); each request's headers reply then picks its
 * mode. An AI request's body is held until the decision (BUFFERED) and its response body is sent
 * chunk by chunk for its usage (STREAMED); any other request is decided on its headers and neither
 * body is sent. Needs allow_mode_override in the filter.
 */
const AI_EXCHANGE_MODE: ProcessingMode = { response_header_mode: 'SEND', request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' };
const HEADERS_ONLY_MODE: ProcessingMode = { response_header_mode: 'SEND', request_body_mode: 'NONE', response_body_mode: 'NONE', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' };
/**
 * Observed metering (a second ext_proc filter in observability_mode reads event streams): an AI
 * exchange starts as AI_EXCHANGE_MODE, and the response-headers reply of an event stream hands it
 * to the metering stream (STREAM_HANDED_OVER: no round trip per chunk); any other body is read
 * here as in the synchronous mode (a JSON answer is one or two messages). A request that is not an
 * AI call is decided on its headers alone; its client headers travel as dynamic metadata
 * (METERING_NAMESPACE) that the virtual host's response_headers_to_add writes, so its response is
 * not sent here at all.
 */
const HEADERS_ONLY_MODE_OBSERVED: ProcessingMode = { response_header_mode: 'SKIP', request_body_mode: 'NONE', response_body_mode: 'NONE', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' };
const STREAM_HANDED_OVER: ProcessingMode = { request_header_mode: 'SEND', response_header_mode: 'SEND', request_body_mode: 'NONE', response_body_mode: 'NONE', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' };

/**
 * The dynamic metadata namespace of the deciding stream's replies (observed metering):
 * `exchange_id`, which the metering filter forwards back to claim an event stream, and the client
 * headers (by name) of a request decided on its headers alone.
 */
export const METERING_NAMESPACE = 'genops';
/** The gRPC request metadata with which the deciding filter declares observed metering (grpc_service.initial_metadata). */
export const METERING_STREAM_HEADER = 'x-genops-metering';
/** How long an exchange whose deciding stream ended waits for its metering stream (Envoy sends it before the decider's close). */
export const DEFAULT_METERING_GRACE_MS = 10_000;

export interface ExtProcSession {
  /**
   * The one reply to one ProcessingRequest, of the matching kind; undefined
   * when Envoy expects none (observability mode).
   */
  handle(request: ProcessingRequest): ProcessingResponse | undefined | Promise<ProcessingResponse | undefined>;
  /** The stream ended (Envoy half-closed, reset or cancelled it); settles what is still open. Idempotent. */
  close(): void;
  /**
   * A metering stream (observability_mode) has seen its response end: the server may end the call
   * instead of leaving it open until Envoy's deferred_close_timeout.
   */
  readonly done: boolean;
}

export interface ExtProcStreamOptions {
  /** The deciding filter leaves the response to a metering filter in observability_mode (METERING_STREAM_HEADER: observed). */
  readonly observedMetering?: boolean;
}

export interface ExtProcSessionFactory {
  open(stream?: ExtProcStreamOptions): ExtProcSession;
}

export interface ExtProcSessionOptions {
  readonly governor: Governor;
  readonly reporter: DecisionReporter;
  readonly policy: () => CompiledPolicy;
  readonly now: () => number;
  /** Called exactly once for each allowed AI exchange, when it ends, however it ends. */
  readonly settle?: ((exchange: FinishedExchange, headers: HeaderLookup) => void) | undefined;
  /** Observed metering: how long an exchange waits for its metering stream after its deciding stream ended. */
  readonly meteringGraceMs?: number | undefined;
  /** A metering stream named an exchange this process does not hold (decided by another replica, or already settled). */
  readonly unmatchedMetering?: ((decisionId: string) => void) | undefined;
}

/** An AI request between its headers and its decision. */
interface AwaitingBody {
  /** The API and the model or deployment its path names. */
  readonly route: AiRoute;
  readonly startedAt: number;
  readonly headers: HeaderLookup;
  readonly principal: string | undefined;
  readonly path: string | undefined;
  readonly jwtMetadata: Record<string, unknown> | undefined;
}

/** An allowed AI request whose response is being read. */
interface OpenExchange {
  readonly decision: Decision;
  readonly startedAt: number;
  readonly headers: HeaderLookup;
  meter: UsageMeter | undefined;
  upstreamStatus: number | undefined;
  /** The response came from the upstream, not from Envoy itself (a local reply). */
  fromUpstream: boolean;
}

/**
 * The state of one ext_proc stream, that is one HTTP exchange. Its phases:
 * request headers → (AI paths) request body → response headers → response
 * body chunks → end. Protocol state lives here; every decision and count is
 * made by the governor and the settlement it is given.
 */
export function createExtProcSessionFactory(options: ExtProcSessionOptions): ExtProcSessionFactory {
  const { governor, reporter, now, policy, settle } = options;

  function settleExchange(open: OpenExchange, outcome: 'completed' | 'interrupted' | 'no_response'): void {
    const report = open.meter ? (outcome === 'completed' ? open.meter.end() : open.meter.snapshot()) : undefined;
    const settled = exchangeOutcome(outcome, { status: open.upstreamStatus, fromUpstream: open.fromUpstream, usageComplete: report?.complete === true });
    settle?.({ decision: open.decision, startedAt: open.startedAt, report, upstreamStatus: open.upstreamStatus, outcome: settled }, open.headers);
  }

  const metered: MeteredExchanges<OpenExchange> = createMeteredExchanges({
    graceMs: options.meteringGraceMs ?? DEFAULT_METERING_GRACE_MS,
    orphaned: (open) => settleExchange(open, open.upstreamStatus === undefined ? 'no_response' : 'interrupted'),
    unmatched: options.unmatchedMetering,
  });

  return {
    open(stream = {}) {
      const observed = stream.observedMetering === true;
      let decision: Decision | undefined;
      let awaitingBody: AwaitingBody | undefined;
      let exchange: OpenExchange | undefined;
      /** Observed metering: the decided exchange waiting in `metered` for its metering stream. */
      let handedOver: string | undefined;
      /** A metering stream: the first message has been read for its decision id. */
      let meterBound = false;
      let ended = false;
      let responseEnded = false;

      function finishExchange(outcome: 'completed' | 'interrupted' | 'no_response'): void {
        const open = exchange;
        if (!open) return;
        exchange = undefined;
        settleExchange(open, outcome);
      }

      /** A metering stream's first message names its exchange in the metadata the deciding reply emitted. */
      function bindMeter(request: ProcessingRequest): void {
        meterBound = true;
        const id = metadataNamespace(request.metadata_context, METERING_NAMESPACE)?.exchange_id;
        if (typeof id === 'string' && id !== '') exchange = metered.claim(id);
      }

      function decided(settled: Decision, startedAt: number, headers: HeaderLookup, api: AiApi | undefined): Decision {
        decision = settled;
        reporter.report('ext_proc', settled, startedAt, headers);
        if (api && isAllowed(settled) && settled.ai) {
          // Envoy reset the stream while the decision was being made: the request never went upstream,
          // but what was reserved for it must be released now, not when the reservation expires.
          if (ended) settle?.({ decision: settled, startedAt, report: undefined, upstreamStatus: undefined, outcome: 'not_sent' }, headers);
          else exchange = { decision: settled, startedAt, headers, meter: undefined, upstreamStatus: undefined, fromUpstream: false };
        }
        return settled;
      }

      function onRequestHeaders(request: ProcessingRequest, headers: HeaderLookup): ProcessingResponse | Promise<ProcessingResponse> {
        const startedAt = now();
        const path = headers(':path');
        const principal = principalOf(request.attributes);
        const jwtMetadata = metadataNamespace(request.metadata_context, JWT_AUTHN_NAMESPACE);
        const shape = classifyRequest({ method: headers(':method'), path, hasBody: request.request_headers?.end_of_stream !== true }, policy().usage);
        const route = shape.kind === 'ai' ? shape.route : undefined;
        const unknownAiApi = shape.kind === 'unknown' ? shape.message : undefined;
        if (route && !request.request_headers?.end_of_stream) {
          awaitingBody = { route, startedAt, headers, principal, path, jwtMetadata };
          return { request_headers: { response: {} }, mode_override: AI_EXCHANGE_MODE };
        }
        const ai: AiBodyInput | undefined = route ? readAiBody(route, EMPTY, policy().usage, { canRewrite: false }).input : undefined;
        const evaluated = governor.evaluate({ headers, principal, path, ai, jwtMetadata, unknownAiApi });
        const reply = (settled: Decision) => {
          decided(settled, startedAt, headers, undefined);
          if (!isAllowed(settled)) return immediateDenial(settled);
          if (!observed) return { request_headers: { response: continueUpstream(settled, undefined) }, mode_override: HEADERS_ONLY_MODE };
          return { request_headers: { response: continueUpstream(settled, undefined) }, mode_override: HEADERS_ONLY_MODE_OBSERVED, dynamic_metadata: clientMetadata(settled) };
        };
        return evaluated instanceof Promise ? evaluated.then(reply) : reply(evaluated);
      }

      function onRequestBody(body: Buffer): ProcessingResponse | Promise<ProcessingResponse> {
        const pending = awaitingBody;
        if (!pending) return { request_body: { response: {} } };
        awaitingBody = undefined;
        const read = readAiBody(pending.route, body, policy().usage, { canRewrite: true, signed: isBodySigned(pending.headers), contentType: pending.headers('content-type') });
        const ai = read.input;
        const evaluated = governor.evaluate({ headers: pending.headers, principal: pending.principal, path: pending.path, ai, jwtMetadata: pending.jwtMetadata, bodyBytes: body.length, settles: true });
        const reply = (settled: Decision): ProcessingResponse => {
          decided(settled, pending.startedAt, pending.headers, pending.route.api);
          if (!isAllowed(settled)) return immediateDenial(settled);
          return { request_body: { response: continueUpstream(settled, read.rewrite(settled)) } };
        };
        return evaluated instanceof Promise ? evaluated.then(reply) : reply(evaluated);
      }

      function onResponseHeaders(request: ProcessingRequest, headers: HeaderLookup): ProcessingResponse {
        const set_headers = decision ? clientHeaders(decision).map(overwrite) : [];
        if (exchange) {
          const status = Number(headers(':status'));
          exchange.upstreamStatus = Number.isInteger(status) ? status : undefined;
          exchange.fromUpstream = headers(UPSTREAM_RESPONSE_MARK) !== undefined;
          const encoding = headers('content-encoding');
          // Compressed bodies are not decoded: accept-encoding is removed upstream, so this is a provider ignoring it.
          if (encoding === undefined || encoding === 'identity') exchange.meter = createUsageMeter({ api: exchange.decision.ai!.api, contentType: headers('content-type') });
          if (request.response_headers?.end_of_stream) finishExchange('completed');
          else if (observed && exchange.upstreamStatus === 200 && isEventStream(headers('content-type'))) {
            // An event stream: the metering filter reads it without holding it; it claims the exchange by this id.
            const open = exchange;
            exchange = undefined;
            handedOver = open.decision.id;
            metered.expect(handedOver, open);
            return { response_headers: { response: { header_mutation: { set_headers } } }, mode_override: STREAM_HANDED_OVER, dynamic_metadata: exchangeMetadata(handedOver) };
          }
        }
        return { response_headers: { response: { header_mutation: { set_headers } } } };
      }

      function onResponseBody(body: Buffer | undefined, endOfStream: boolean): ProcessingResponse {
        if (exchange?.meter && body && body.length > 0) exchange.meter.push(body);
        if (endOfStream) finishExchange('completed');
        return { response_body: { response: {} } };
      }

      function replyTo(request: ProcessingRequest): ProcessingResponse | Promise<ProcessingResponse> {
        if (request.request_headers) return onRequestHeaders(request, lookupFromHeaderMap(request.request_headers.headers));
        if (request.request_body) return onRequestBody(request.request_body.body ?? EMPTY);
        if (request.response_headers) return onResponseHeaders(request, lookupFromHeaderMap(request.response_headers.headers));
        if (request.response_body) return onResponseBody(request.response_body.body, request.response_body.end_of_stream === true);
        if (request.request_trailers) return { request_trailers: {} };
        if (request.response_trailers) {
          finishExchange('completed');
          return { response_trailers: {} };
        }
        throw new GenopsError('malformed_request', 'ProcessingRequest carries none of the request kinds this service knows');
      }

      return {
        handle(request) {
          if (request.observability_mode && !meterBound) bindMeter(request);
          if (request.response_headers?.end_of_stream || request.response_body?.end_of_stream || request.response_trailers) responseEnded = true;
          const reply = replyTo(request);
          if (!request.observability_mode) return reply;
          return reply instanceof Promise ? reply.then(() => undefined) : undefined;
        },
        get done() {
          return meterBound && responseEnded;
        },
        close() {
          ended = true;
          awaitingBody = undefined;
          if (handedOver !== undefined) metered.deciderEnded(handedOver);
          handedOver = undefined;
          if (exchange) finishExchange(exchange.upstreamStatus === undefined ? 'no_response' : 'interrupted');
        },
      };
    },
  };
}

function continueUpstream(decision: Decision, body: Buffer | undefined): CommonResponse {
  const set_headers = upstreamHeaders(decision).map(overwrite);
  const remove_headers = headersToRemove(decision);
  if (decision.ai) remove_headers.push(...aiUpstreamHeadersToRemove);
  const response: CommonResponse = { status: 'CONTINUE', header_mutation: { set_headers, remove_headers }, clear_route_cache: true };
  if (body) {
    response.body_mutation = { body };
    set_headers.push(overwrite(['content-length', String(body.length)]));
  }
  return response;
}

function isEventStream(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.trimStart().toLowerCase().startsWith('text/event-stream');
}

/** The id by which the metering stream claims the exchange, as dynamic metadata of METERING_NAMESPACE. */
function exchangeMetadata(id: string): ProtoStruct {
  return { fields: { [METERING_NAMESPACE]: { structValue: { fields: { exchange_id: { stringValue: id } } } } } };
}

/** The client's headers (by lowercase name) as dynamic metadata of METERING_NAMESPACE. */
function clientMetadata(decision: Decision): ProtoStruct {
  const fields: Record<string, { stringValue: string }> = {};
  for (const [name, value] of clientHeaders(decision)) fields[name] = { stringValue: value };
  return { fields: { [METERING_NAMESPACE]: { structValue: { fields } } } };
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
  return { header: { key, raw_value: value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
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
