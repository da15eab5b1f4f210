/**
 * src/telemetry/trace-context.ts writes out the extraction rules of OpenTelemetry's W3C and B3
 * propagators (so the serving process does not load @opentelemetry/core): over a corpus of valid,
 * borderline and broken headers, and a seeded fuzz of them, it must find exactly the parent those
 * propagators find, trace state included.
 */
import { ROOT_CONTEXT, trace, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import { TraceState, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { describe, expect, it } from 'vitest';
import { remoteParentOf, setTraceStateParser, type HeaderReader } from '../../src/telemetry/trace-context.js';

const w3c = new W3CTraceContextPropagator();
const b3 = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
const getter: TextMapGetter<HeaderReader> = { get: (headers, key) => headers(key.toLowerCase()), keys: () => [] };

/** What the service did with the libraries' propagators: W3C first, then B3 (single, else multi). */
function libraryParent(headers: HeaderReader): SpanContext | undefined {
  if (headers('traceparent') !== undefined) {
    const parent = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, headers, getter));
    if (parent) return parent;
  }
  if (headers('b3') !== undefined || headers('x-b3-traceid') !== undefined) return trace.getSpanContext(b3.extract(ROOT_CONTEXT, headers, getter));
  return undefined;
}

const plain = (parent: SpanContext | undefined) => parent && { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.traceFlags, isRemote: parent.isRemote, traceState: parent.traceState?.serialize() };

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const corpus: Record<string, string>[] = [
  {},
  { traceparent: `00-${TRACE}-${SPAN}-01` },
  { traceparent: `00-${TRACE}-${SPAN}-00`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' },
  { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'a=1,b=2,a=3, c = 4 ,bad key=1,' + 'x'.repeat(300) + '=1' },
  { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: '' },
  { traceparent: ` 00-${TRACE}-${SPAN}-01 ` },
  { traceparent: `00-${TRACE}-${SPAN}-01-extra` },
  { traceparent: `01-${TRACE}-${SPAN}-01-extra` },
  { traceparent: `ff-${TRACE}-${SPAN}-01` },
  { traceparent: `00-${'0'.repeat(32)}-${SPAN}-01` },
  { traceparent: `00-${TRACE}-${'0'.repeat(16)}-01` },
  { traceparent: `00-${TRACE.toUpperCase()}-${SPAN}-01` },
  { traceparent: `00-${TRACE}-${SPAN}-1` },
  { traceparent: `00-${TRACE}-${SPAN}-ff` },
  { traceparent: '' },
  { traceparent: 'garbage', b3: `${TRACE}-${SPAN}-1` },
  { b3: `${TRACE}-${SPAN}` },
  { b3: `${TRACE}-${SPAN}-1` },
  { b3: `${TRACE}-${SPAN}-0` },
  { b3: `${TRACE}-${SPAN}-d` },
  { b3: `${TRACE}-${SPAN}-1-${SPAN}` },
  { b3: `${TRACE.slice(16)}-${SPAN}-1` },
  { b3: `${'0'.repeat(32)}-${SPAN}-1` },
  { b3: `${TRACE}-${'0'.repeat(16)}-1` },
  { b3: `${TRACE.toUpperCase()}-${SPAN}-1` },
  { b3: `prefix ${TRACE}-${SPAN}-1 suffix` },
  { b3: '0' },
  { b3: '', 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN },
  { b3: 'garbage', 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'true' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'True' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'False' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'yes' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'yes', 'x-b3-flags': '1' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' },
  { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '0', 'x-b3-sampled': '0' },
  { 'x-b3-traceid': TRACE.slice(16), 'x-b3-spanid': SPAN },
  { 'x-b3-traceid': TRACE.toUpperCase(), 'x-b3-spanid': SPAN.toUpperCase() },
  { 'x-b3-traceid': TRACE.slice(1), 'x-b3-spanid': SPAN },
  { 'x-b3-traceid': TRACE },
  { 'x-b3-traceid': '', 'x-b3-spanid': SPAN },
  { 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' },
];

function reader(headers: Record<string, string>): HeaderReader {
  return (name) => headers[name];
}

describe('trace context extraction without @opentelemetry/core', () => {
  // As createTracing installs it when tracing is on: the only case where a parent's trace state is read.
  setTraceStateParser((raw) => new TraceState(raw));

  it.each(corpus.map((headers) => [JSON.stringify(headers), headers] as const))('%s: the propagators\' parent', (_name, headers) => {
    expect(plain(remoteParentOf(reader(headers)))).toEqual(plain(libraryParent(reader(headers))));
  });

  it('finds a parent where the propagators do in a seeded fuzz of 5,000 header sets, and the same one', () => {
    let seed = 0x5eed;
    // mulberry32
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const hex = (length: number) => Array.from({ length }, () => pick('0123456789abcdef0123456789abcdefAF-g '.split(''))).join('');
    const valid = (length: number) => Array.from({ length }, () => pick('0123456789abcdef'.split(''))).join('');
    const id = (length: number) => pick([valid(length), valid(length), valid(length), hex(length), '0'.repeat(length), valid(length / 2), valid(length + 1), valid(length).toUpperCase()]);
    const shapes = [
      () => `${pick(['00', '01', 'ff', 'cc', hex(2)])}-${id(32)}-${id(16)}-${pick(['00', '01', hex(2), '1'])}${pick(['', '', '-x', '-'])}`,
      () => `${pick([id(32), id(16)])}-${id(16)}${pick(['', '-1', '-0', '-d', '-x', `-1-${id(16)}`])}`,
      () => id(32),
      () => id(16),
      () => pick(['1', '0', 'true', 'True', 'false', 'd', 'yes', '']),
    ];
    const value = () => pick(shapes)();
    let found = 0;
    for (let i = 0; i < 5_000; i++) {
      const headers: Record<string, string> = {};
      for (const name of ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-b3-flags']) if (random() < 0.4) headers[name] = name === 'tracestate' ? `k${i}=${hex(4)},${pick(['a=1', 'bad', ''])}` : value();
      const expected = plain(libraryParent(reader(headers)));
      expect(plain(remoteParentOf(reader(headers))), JSON.stringify(headers)).toEqual(expected);
      if (expected) found++;
    }
    // The fuzz reaches valid parents too, not only refusals.
    expect(found).toBeGreaterThan(50);
  });
});
describe('remoteParentOf reads traceparent as the OpenTelemetry W3C propagator does', () => {
  const cases: Record<string, string>[] = [
    { traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-01' },
    { traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-00' },
    { traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-01', tracestate: 'vendor=a,other=b' },
    { traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-01', tracestate: '' },
    { traceparent: '01-6e6f7073000000000000000000000001-0000000000000001-01-future' },
    { traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-01-extra' },
    { traceparent: 'ff-6e6f7073000000000000000000000001-0000000000000001-01' },
    { traceparent: '00-00000000000000000000000000000000-0000000000000001-01' },
    { traceparent: '00-6e6f7073000000000000000000000001-0000000000000000-01' },
    { traceparent: '00-6E6F7073000000000000000000000001-0000000000000001-01' },
    { traceparent: ' 00-6e6f7073000000000000000000000001-0000000000000001-01 ' },
    { traceparent: '00-6e6f7073000000000000000000000001-000000000000001-01' },
    { traceparent: '' },
    { traceparent: 'garbage' },
  ];
  for (const headers of cases) {
    it(`${JSON.stringify(headers)}`, () => {
      const expected = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, reader(headers), getter));
      const actual = remoteParentOf(reader(headers));
      expect(actual === undefined ? undefined : { ...actual, traceState: actual.traceState?.serialize() }).toEqual(expected === undefined ? undefined : { ...expected, traceState: expected.traceState?.serialize() });
    });
  }

  it('agrees on 5,000 mutations of a valid traceparent', () => {
    let seed = 11;
    const random = (below: number) => (seed = (seed * 48271) % 2147483647) % below;
    const alphabet = '0123456789abcdefABCDEF- xgf\t';
    for (let i = 0; i < 5_000; i++) {
      const chars = [...'00-6e6f7073000000000000000000000001-0000000000000001-01'];
      for (let edits = 1 + random(3); edits > 0; edits--) {
        const at = random(chars.length);
        const kind = random(4);
        if (kind === 0) chars.splice(at, 1);
        else if (kind === 1) chars.splice(at, 0, alphabet[random(alphabet.length)]!);
        else chars[at] = alphabet[random(alphabet.length)]!;
        if (kind === 3 && random(2) === 0) chars.splice(0, 2, 'f', 'f');
      }
      const headers = { traceparent: chars.join('') };
      const expected = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, reader(headers), getter));
      expect(remoteParentOf(reader(headers)), headers.traceparent).toEqual(expected);
    }
  });

  it('falls back to B3 when traceparent is invalid', () => {
    const parent = remoteParentOf(reader({ traceparent: 'garbage', b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }));
    expect(parent?.traceId).toBe('80f198ee56343ba864fe8b2a57d3eff7');
  });
});
