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
import { HANDED_OVER_HEADERS } from './exchange-handoff.js';
import type { Adoption, SharedMetering } from './shared-metering.js';
import { lookupFromHeaderMap } from './header-lookup.js';
import type { CommonResponse, HeaderValueOption, ProcessingMode, ProcessingRequest, ProcessingResponse, StructValue } from './envoy-messages.js';
import type { ProtoStruct } from './struct-to-json.js';
import { aiUpstreamHeadersToRemove, clientHeaders, denialHeaders, headersToRemove, upstreamHeaders } from './governance-headers.js';
import { JWT_AUTHN_NAMESPACE, metadataNamespace } from './struct-to-json.js';
import { createHeldRequestBodies, DEFAULT_MAX_HELD_REQUEST_BYTES } from './held-request-bodies.js';

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
 * One round trip (the route's ExtProcPerRoute sets request_body_mode FULL_DUPLEX_STREAMED): Envoy
 * sends the request headers and then the body without waiting for a reply, and forwards only the
 * body the service sends back. An AI request's headers reply waits for the whole body, then the
 * decision (header mutations, route refresh) and the body go out together. These overrides keep the
 * request body FULL_DUPLEX_STREAMED (switching it mid-body would drop the chunks already sent) and
 * its trailers SEND (with trailers, they end the body).
 */
const PIPELINED = { request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND' } as const;
const AI_EXCHANGE_MODE_PIPELINED: ProcessingMode = { ...AI_EXCHANGE_MODE, ...PIPELINED };
const HEADERS_ONLY_MODE_PIPELINED: ProcessingMode = { ...HEADERS_ONLY_MODE, ...PIPELINED };
const HEADERS_ONLY_MODE_OBSERVED_PIPELINED: ProcessingMode = { ...HEADERS_ONLY_MODE_OBSERVED, ...PIPELINED };
/** BodySendMode FULL_DUPLEX_STREAMED as protobufjs decodes it. */
const FULL_DUPLEX_STREAMED = 4;
/** No reply yet: the headers of a pipelined AI request are answered once its body is complete. */
const NOT_YET: readonly ProcessingResponse[] = [];

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

/**
 * What to send for one ProcessingRequest: one reply of the matching kind; several in order (a
 * pipelined request's held headers reply, then its body); none (observability mode, or a
 * pipelined request whose body is still coming).
 */
export type ExtProcReplies = ProcessingResponse | readonly ProcessingResponse[] | undefined;

export interface ExtProcSession {
  /** What to send for one ProcessingRequest (the server writes each reply in order). */
  replies(request: ProcessingRequest): ExtProcReplies | Promise<ExtProcReplies>;
  /**
   * The one reply to one ProcessingRequest, of the matching kind; undefined when Envoy expects
   * none (observability mode). Throws where several are due (a pipelined request: use replies).
   */
  handle(request: ProcessingRequest): ProcessingResponse | undefined | Promise<ProcessingResponse | undefined>;
  /** The stream ended (Envoy half-closed, reset or cancelled it); settles what is still open. Idempotent. */
  close(): void;
  /**
   * A metering stream (observability_mode) has seen its response end, or a deciding stream has
   * handed its event stream over (nothing left to ask): the server may end the call (Envoy ignores
   * a stream the server closed cleanly) instead of leaving it open until Envoy ends it.
   */
  readonly done: boolean;
}

export interface ExtProcStreamOptions {
  /**
   * The deciding filter leaves the response to a metering filter in observability_mode
   * (METERING_STREAM_HEADER: observed). 'streams' (header value `streams`): event streams only;
   * the client headers of a request that is not an AI call still come in its response-headers
   * reply (no route config writes them from dynamic metadata: Istio, Helm).
   */
  readonly observedMetering?: boolean | 'streams';
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
  /**
   * Observed metering across replicas (a shared store and a handoff key): event streams are handed
   * over sealed in the dynamic metadata, and a metering stream for an exchange decided elsewhere is
   * adopted from it. Without it a foreign metering stream is counted unmatched.
   */
  readonly sharedMetering?: SharedMetering | undefined;
  /** Wall clock (ms) for the handoff's start time; default Date.now. */
  readonly wallClock?: (() => number) | undefined;
  /** One round trip: the total of the request bodies held before their decision (held-request-bodies.ts). */
  readonly maxHeldRequestBytes?: number | undefined;
  /** A held request body was let go to keep that total, and its request refused with 503. */
  readonly heldBodyEvicted?: ((bytes: number) => void) | undefined;
  /** The total of the held request bodies changed. */
  readonly heldBodiesChanged?: ((bytes: number) => void) | undefined;
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
  /** FULL_DUPLEX_STREAMED: the body arrives in chunks without waiting; its headers are not answered yet. */
  readonly pipelined: boolean;
  readonly chunks: Buffer[];
  bytes: number;
  /** Let go to keep the service's held total (HeldRequestBodies): the request is refused. */
  evicted: boolean;
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
  /** Metered under the shared claim (decided elsewhere and adopted from its handoff, or sealed here): settled only through it. */
  adoption?: Pick<Adoption, 'finish'> | undefined;
  /** Its handoff went out sealed: another replica may settle it, so the fallback goes through the shared claim. */
  sealed?: boolean | undefined;
}

/**
 * The state of one ext_proc stream, that is one HTTP exchange. Its phases:
 * request headers → (AI paths) request body → response headers → response
 * body chunks → end. Protocol state lives here; every decision and count is
 * made by the governor and the settlement it is given.
 */
export function createExtProcSessionFactory(options: ExtProcSessionOptions): ExtProcSessionFactory {
  const { governor, reporter, now, policy, settle, sharedMetering } = options;
  const wallClock = options.wallClock ?? Date.now;

  function settleExchange(open: OpenExchange, outcome: 'completed' | 'interrupted' | 'no_response'): void {
    const report = open.meter ? (outcome === 'completed' ? open.meter.end() : open.meter.snapshot()) : undefined;
    const settled = exchangeOutcome(outcome, { status: open.upstreamStatus, fromUpstream: open.fromUpstream, usageComplete: report?.complete === true });
    const finished = { decision: open.decision, startedAt: open.startedAt, report, upstreamStatus: open.upstreamStatus, outcome: settled };
    if (open.adoption) open.adoption.finish(() => settle?.(finished, open.headers));
    else settle?.(finished, open.headers);
  }

  const metered: MeteredExchanges<OpenExchange> = createMeteredExchanges({
    graceMs: options.meteringGraceMs ?? DEFAULT_METERING_GRACE_MS,
    orphaned: (open) => {
      const fallback = () => settleExchange(open, open.upstreamStatus === undefined ? 'no_response' : 'interrupted');
      if (open.sealed && sharedMetering) sharedMetering.fallback(open.decision, fallback);
      else fallback();
    },
    unmatched: options.unmatchedMetering,
  });
  const held = createHeldRequestBodies({ maxBytes: options.maxHeldRequestBytes ?? DEFAULT_MAX_HELD_REQUEST_BYTES, evicted: options.heldBodyEvicted, changed: options.heldBodiesChanged });

  /** A metering stream for an exchange another replica decided: rebuilt from its verified handoff. */
  function adopt(id: string, token: unknown): OpenExchange | undefined {
    if (!sharedMetering || typeof token !== 'string') return undefined;
    const adoption = sharedMetering.adopt(token, id);
    if (!adoption) return undefined;
    const { decision, startedAtMs, headers } = adoption.exchange;
    const startedAt = now() - Math.max(0, wallClock() - startedAtMs);
    return { decision, startedAt, headers: (name) => headers[name], meter: undefined, upstreamStatus: undefined, fromUpstream: false, adoption };
  }

  /** The handoff for the dynamic metadata (undefined: in-process only). */
  function seal(open: OpenExchange): string | undefined {
    if (!sharedMetering) return undefined;
    const headers: Record<string, string> = {};
    for (const name of HANDED_OVER_HEADERS) {
      const value = open.headers(name);
      if (value !== undefined) headers[name] = value;
    }
    const token = sharedMetering.seal({ decision: open.decision, startedAtMs: wallClock() - (now() - open.startedAt), headers });
    open.sealed = token !== undefined;
    return token;
  }

  return {
    open(stream = {}) {
      const observed = stream.observedMetering === true || stream.observedMetering === 'streams';
      const headersFromMetadata = stream.observedMetering === true;
      let decision: Decision | undefined;
      let awaitingBody: AwaitingBody | undefined;
      let exchange: OpenExchange | undefined;
      /** Observed metering: the decided exchange waiting in `metered` for its metering stream. */
      let handedOver: string | undefined;
      /** A metering stream: the first message has been read for its decision id. */
      let meterBound = false;
      let ended = false;
      let responseEnded = false;
      /** A deciding stream whose exchange was handed over: every later phase is SKIP / NONE. */
      let finishedHere = false;
      /** FULL_DUPLEX_STREAMED request body after its decision: every chunk goes back to Envoy as it came. */
      let echoBody = false;

      function finishExchange(outcome: 'completed' | 'interrupted' | 'no_response'): void {
        const open = exchange;
        if (!open) return;
        exchange = undefined;
        settleExchange(open, outcome);
      }

      /** A metering stream's first message names its exchange in the metadata the deciding reply emitted. */
      function bindMeter(request: ProcessingRequest): void {
        meterBound = true;
        const handed = metadataNamespace(request.metadata_context, METERING_NAMESPACE);
        const id = handed?.exchange_id;
        if (typeof id === 'string' && id !== '') exchange = metered.claim(id, () => adopt(id, handed?.handoff));
        // Handed over sealed and metered here after all: settled through the same claim as anywhere else.
        if (exchange?.sealed && !exchange.adoption && sharedMetering) exchange.adoption = sharedMetering.meterHere(exchange.decision);
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

      function onRequestHeaders(request: ProcessingRequest, headers: HeaderLookup): ExtProcReplies | Promise<ExtProcReplies> {
        const startedAt = now();
        const path = headers(':path');
        const principal = principalOf(request.attributes);
        const jwtMetadata = metadataNamespace(request.metadata_context, JWT_AUTHN_NAMESPACE);
        const shape = classifyRequest({ method: headers(':method'), path, hasBody: request.request_headers?.end_of_stream !== true }, policy().usage);
        const route = shape.kind === 'ai' ? shape.route : undefined;
        const unknownAiApi = shape.kind === 'unknown' ? shape.message : undefined;
        const pipelined = isFullDuplex(request.protocol_config?.request_body_mode);
        if (route && !request.request_headers?.end_of_stream) {
          awaitingBody = { route, startedAt, headers, principal, path, jwtMetadata, pipelined, chunks: [], bytes: 0, evicted: false };
          return pipelined ? NOT_YET : { request_headers: { response: {} }, mode_override: AI_EXCHANGE_MODE };
        }
        if (pipelined && !request.request_headers?.end_of_stream) echoBody = true;
        const ai: AiBodyInput | undefined = route ? readAiBody(route, EMPTY, policy().usage, { canRewrite: false }).input : undefined;
        const evaluated = governor.evaluate({ headers, principal, path, ai, jwtMetadata, unknownAiApi });
        const reply = (settled: Decision) => {
          decided(settled, startedAt, headers, undefined);
          if (!isAllowed(settled)) return immediateDenial(settled);
          if (!headersFromMetadata) return { request_headers: { response: continueUpstream(settled, undefined) }, mode_override: pipelined ? HEADERS_ONLY_MODE_PIPELINED : HEADERS_ONLY_MODE };
          return { request_headers: { response: continueUpstream(settled, undefined) }, mode_override: pipelined ? HEADERS_ONLY_MODE_OBSERVED_PIPELINED : HEADERS_ONLY_MODE_OBSERVED, dynamic_metadata: clientMetadata(settled) };
        };
        return evaluated instanceof Promise ? evaluated.then(reply) : reply(evaluated);
      }

      function onRequestBody(body: Buffer, endOfStream: boolean): ExtProcReplies | Promise<ExtProcReplies> {
        if (echoBody) return echoed(body, endOfStream);
        const pending = awaitingBody;
        if (!pending) return { request_body: { response: {} } };
        if (pending.pipelined) {
          if (!pending.evicted && body.length > 0) {
            pending.chunks.push(body);
            pending.bytes += body.length;
            held.grew(pending, body.length);
          }
          if (pending.evicted) return refuseEvicted();
          // Past the policy's limit the body is refused now (413) rather than held to its end.
          if (!endOfStream && pending.bytes <= policy().usage.maxRequestBodyBytes) return NOT_YET;
          return decidePipelined(pending, endOfStream, false);
        }
        awaitingBody = undefined;
        const { read, evaluated } = evaluateBody(pending, body);
        const reply = (settled: Decision): ProcessingResponse => {
          decided(settled, pending.startedAt, pending.headers, pending.route.api);
          if (!isAllowed(settled)) return immediateDenial(settled);
          return { request_body: { response: continueUpstream(settled, read.rewrite(settled)) } };
        };
        return evaluated instanceof Promise ? evaluated.then(reply) : reply(evaluated);
      }

      /** The AI request's decision on its whole body (read once; rewritable unless signed). */
      function evaluateBody(pending: AwaitingBody, body: Buffer) {
        const read = readAiBody(pending.route, body, policy().usage, { canRewrite: true, signed: isBodySigned(pending.headers), contentType: pending.headers('content-type') });
        const evaluated = governor.evaluate({ headers: pending.headers, principal: pending.principal, path: pending.path, ai: read.input, jwtMetadata: pending.jwtMetadata, bodyBytes: body.length, settles: true });
        return { read, evaluated };
      }

      /**
       * A pipelined AI request's body is complete (or past the limit, or ended by trailers): the held
       * headers reply carries the decision; the body reply forwards the body (rewritten or not).
       */
      function decidePipelined(pending: AwaitingBody, endOfStream: boolean, trailers: boolean): ExtProcReplies | Promise<ExtProcReplies> {
        awaitingBody = undefined;
        held.release(pending);
        const body = pending.chunks.length === 1 ? pending.chunks[0]! : Buffer.concat(pending.chunks, pending.bytes);
        const { read, evaluated } = evaluateBody(pending, body);
        const reply = (settled: Decision): ExtProcReplies => {
          decided(settled, pending.startedAt, pending.headers, pending.route.api);
          if (!isAllowed(settled)) return immediateDenial(settled);
          // Whatever of the body is still to come (a body allowed before its end) goes through as it is.
          if (!endOfStream && !trailers) echoBody = true;
          const forwarded = read.rewrite(settled) ?? body;
          const replies: ProcessingResponse[] = [
            { request_headers: { response: continueUpstream(settled, undefined) }, mode_override: AI_EXCHANGE_MODE_PIPELINED },
            { request_body: { response: { body_mutation: { streamed_response: { body: forwarded, end_of_stream: endOfStream } } } } },
          ];
          if (trailers) replies.push({ request_trailers: {} });
          return replies;
        };
        return evaluated instanceof Promise ? evaluated.then(reply) : reply(evaluated);
      }

      /** The body was let go to keep the held total: nothing was decided, nothing reserved. */
      function refuseEvicted(): ProcessingResponse {
        awaitingBody = undefined;
        return heldBodiesFull();
      }

      function onRequestTrailers(): ExtProcReplies | Promise<ExtProcReplies> {
        const pending = awaitingBody;
        if (pending?.evicted) return refuseEvicted();
        if (pending?.pipelined) return decidePipelined(pending, false, true);
        return { request_trailers: {} };
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
            finishedHere = true;
            return { response_headers: { response: { header_mutation: { set_headers } } }, mode_override: STREAM_HANDED_OVER, dynamic_metadata: exchangeMetadata(handedOver, seal(open)) };
          }
        }
        return { response_headers: { response: { header_mutation: { set_headers } } } };
      }

      function onResponseBody(body: Buffer | undefined, endOfStream: boolean): ProcessingResponse {
        if (exchange?.meter && body && body.length > 0) exchange.meter.push(body);
        if (endOfStream) finishExchange('completed');
        return { response_body: { response: {} } };
      }

      function replyTo(request: ProcessingRequest): ExtProcReplies | Promise<ExtProcReplies> {
        if (request.request_headers) return onRequestHeaders(request, lookupFromHeaderMap(request.request_headers.headers));
        if (request.request_body) return onRequestBody(request.request_body.body ?? EMPTY, request.request_body.end_of_stream === true);
        if (request.response_headers) return onResponseHeaders(request, lookupFromHeaderMap(request.response_headers.headers));
        if (request.response_body) return onResponseBody(request.response_body.body, request.response_body.end_of_stream === true);
        if (request.request_trailers) return onRequestTrailers();
        if (request.response_trailers) {
          finishExchange('completed');
          return { response_trailers: {} };
        }
        throw new GenopsError('malformed_request', 'ProcessingRequest carries none of the request kinds this service knows');
      }

      function replies(request: ProcessingRequest): ExtProcReplies | Promise<ExtProcReplies> {
        if (request.observability_mode && !meterBound) bindMeter(request);
        if (request.response_headers?.end_of_stream || request.response_body?.end_of_stream || request.response_trailers) responseEnded = true;
        const reply = replyTo(request);
        if (!request.observability_mode) return reply;
        return reply instanceof Promise ? reply.then(() => undefined) : undefined;
      }

      return {
        replies,
        handle(request) {
          const reply = replies(request);
          return reply instanceof Promise ? reply.then(single) : single(reply);
        },
        get done() {
          return (meterBound && responseEnded) || finishedHere;
        },
        close() {
          ended = true;
          if (awaitingBody) held.release(awaitingBody);
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

function single(replies: ExtProcReplies): ProcessingResponse | undefined {
  if (!Array.isArray(replies)) return replies as ProcessingResponse | undefined;
  if (replies.length > 1) throw new GenopsError('malformed_request', 'a pipelined request has several replies: read them with replies()');
  return replies[0];
}

function isFullDuplex(mode: ProcessingMode['request_body_mode'] | number | undefined): boolean {
  return mode === FULL_DUPLEX_STREAMED || mode === 'FULL_DUPLEX_STREAMED';
}

/** A FULL_DUPLEX_STREAMED chunk sent back unchanged: Envoy forwards only what the service returns. */
function echoed(body: Buffer, endOfStream: boolean): ProcessingResponse {
  return { request_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: endOfStream } } } } };
}

function isEventStream(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.trimStart().toLowerCase().startsWith('text/event-stream');
}

/**
 * The id by which the metering stream claims the exchange, and the sealed handoff by which another
 * replica can settle it (shared-metering.ts), as dynamic metadata of METERING_NAMESPACE.
 */
function exchangeMetadata(id: string, handoff: string | undefined): ProtoStruct {
  const fields: Record<string, { stringValue: string }> = { exchange_id: { stringValue: id } };
  if (handoff !== undefined) fields.handoff = { stringValue: handoff };
  return { fields: { [METERING_NAMESPACE]: { structValue: { fields } } } };
}

/** The client's headers (by lowercase name) as dynamic metadata of METERING_NAMESPACE. */
function clientMetadata(decision: Decision): ProtoStruct {
  const fields: Record<string, { stringValue: string }> = {};
  for (const [name, value] of clientHeaders(decision)) fields[name] = { stringValue: value };
  return { fields: { [METERING_NAMESPACE]: { structValue: { fields } } } };
}

const HELD_BODIES_FULL = Buffer.from(
  JSON.stringify({ error: 'unavailable', reason_code: 'x_request_bodies_full', message: 'the service holds as many request bodies awaiting their decision as it may; this one, among the largest, was let go: retry' }),
  'utf8',
);

/** 503 for a body let go to keep the held total: not a governance decision (none was made), so no decision id. */
function heldBodiesFull(): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: 503 },
      headers: { set_headers: [overwrite(['content-type', 'application/json']), overwrite(['retry-after', '1'])] },
      body: HELD_BODIES_FULL,
      details: 'genops_x_request_bodies_full',
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
