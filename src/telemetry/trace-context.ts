import { createTraceState, isValidSpanId, isValidTraceId, TraceFlags, type SpanContext, type TraceState } from '@opentelemetry/api';

/** Reads one request header by its lowercase name (the governance HeaderLookup has this shape). */
export type HeaderReader = (lowercaseName: string) => string | undefined;

/*
 * The extraction rules of OpenTelemetry's W3CTraceContextPropagator (@opentelemetry/core) and
 * B3Propagator (@opentelemetry/propagator-b3), written out: importing those two loads core's whole
 * index (the semantic-convention tables among it), ~4 MB of RSS in every process, tracing on or
 * off, for two header parsers. test/telemetry/trace-context.test.ts holds these to the libraries'
 * own propagators over a corpus of valid and broken headers.
 */
const TRACE_PARENT = /^\s?((?!ff)[\da-f]{2})-((?![0]{32})[\da-f]{32})-((?![0]{16})[\da-f]{16})-([\da-f]{2})(-.*)?\s?$/;
const B3_SINGLE = /((?:[0-9a-f]{16}){1,2})-([0-9a-f]{16})(?:-([01d](?![0-9a-f])))?(?:-([0-9a-f]{16}))?/;
const B3_SAMPLED = new Set(['true', 'True', '1']);
const B3_UNSAMPLED = new Set(['false', 'False', '0']);

/**
 * How `tracestate` becomes the parent's TraceState. Spans (tracing on) are the only readers of it:
 * tracer.ts installs @opentelemetry/core's TraceState, the SDK's own handling of duplicate and
 * invalid members; until then the API's parser (the same for well-formed headers).
 */
let parseTraceState: (raw: string) => TraceState = createTraceState;

export function setTraceStateParser(parse: (raw: string) => TraceState): void {
  parseTraceState = parse;
}

/**
 * The trace the request belongs to, from the headers Envoy checked: W3C
 * `traceparent` (+ `tracestate`) first, then B3 (`b3`, or `x-b3-traceid` and
 * friends). Undefined when the request carries no valid trace context.
 */
export function remoteParentOf(headers: HeaderReader): SpanContext | undefined {
  // Read once per request: the decision span, the usage span and both log lines ask for it.
  const known = parents.get(headers);
  if (known !== undefined) return known ?? undefined;
  const parent = extractParent(headers);
  parents.set(headers, parent ?? null);
  return parent;
}

const parents = new WeakMap<HeaderReader, SpanContext | null>();

function extractParent(headers: HeaderReader): SpanContext | undefined {
  const traceparent = headers('traceparent');
  if (traceparent !== undefined) {
    const parent = w3cParent(traceparent, headers('tracestate'));
    if (parent) return parent;
  }
  const b3 = headers('b3');
  if (b3) return b3SingleParent(b3);
  if (headers('x-b3-traceid') !== undefined) return b3MultiParent(headers);
  return undefined;
}

function w3cParent(traceparent: string, tracestate: string | undefined): SpanContext | undefined {
  const match = TRACE_PARENT.exec(traceparent);
  // Version 00 has exactly four fields; later versions may append more.
  if (!match || (match[1] === '00' && match[5])) return undefined;
  const parent: SpanContext = { traceId: match[2]!, spanId: match[3]!, traceFlags: parseInt(match[4]!, 16), isRemote: true };
  if (tracestate) parent.traceState = parseTraceState(tracestate);
  return parent;
}

function b3SingleParent(b3: string): SpanContext | undefined {
  const match = B3_SINGLE.exec(b3);
  if (!match) return undefined;
  const [, extractedTraceId, spanId, samplingState] = match;
  const traceId = extractedTraceId!.length === 32 ? extractedTraceId! : extractedTraceId!.padStart(32, '0');
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId!)) return undefined;
  return { traceId, spanId: spanId!, isRemote: true, traceFlags: samplingState === '1' || samplingState === 'd' ? TraceFlags.SAMPLED : TraceFlags.NONE };
}

function b3MultiParent(headers: HeaderReader): SpanContext | undefined {
  const rawTraceId = headers('x-b3-traceid') ?? '';
  const traceId = rawTraceId.length === 16 ? rawTraceId.padStart(32, '0') : rawTraceId;
  const spanId = headers('x-b3-spanid') ?? '';
  const sampled = headers('x-b3-sampled');
  const traceFlags = headers('x-b3-flags') === '1' || (sampled !== undefined && B3_SAMPLED.has(sampled)) ? TraceFlags.SAMPLED : sampled === undefined || B3_UNSAMPLED.has(sampled) ? TraceFlags.NONE : undefined;
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId) || traceFlags === undefined) return undefined;
  return { traceId, spanId, isRemote: true, traceFlags };
}
