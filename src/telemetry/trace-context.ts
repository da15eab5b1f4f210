import { ROOT_CONTEXT, trace, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import { parseTraceParent, TraceState } from '@opentelemetry/core';
import { B3Propagator, B3InjectEncoding } from '@opentelemetry/propagator-b3';

/** Reads one request header by its lowercase name (the governance HeaderLookup has this shape). */
export type HeaderReader = (lowercaseName: string) => string | undefined;

// Extraction reads both the single `b3` header and the multi-header X-B3-* form.
const b3 = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });

const getter: TextMapGetter<HeaderReader> = {
  get: (headers, key) => headers(key.toLowerCase()),
  // The propagators used here read named headers only.
  keys: () => [],
};

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
  if (traceparent) {
    // What W3CTraceContextPropagator#extract reads, without the context and wrapper span it builds around it.
    const parent: SpanContext | null = parseTraceParent(traceparent);
    if (parent) {
      parent.isRemote = true;
      const state = headers('tracestate');
      if (state) parent.traceState = new TraceState(state);
      return parent;
    }
  }
  if (headers('b3') !== undefined || headers('x-b3-traceid') !== undefined) {
    return trace.getSpanContext(b3.extract(ROOT_CONTEXT, headers, getter));
  }
  return undefined;
}
