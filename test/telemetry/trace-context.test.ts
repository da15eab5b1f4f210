import { ROOT_CONTEXT, trace, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { describe, expect, it } from 'vitest';
import { remoteParentOf, type HeaderReader } from '../../src/telemetry/trace-context.js';

const reader = (headers: Record<string, string>): HeaderReader => (name) => headers[name];
const getter: TextMapGetter<HeaderReader> = { get: (headers, key) => headers(key), keys: () => [] };
const propagator = new W3CTraceContextPropagator();

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
      const expected = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, reader(headers), getter));
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
      const expected = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, reader(headers), getter));
      expect(remoteParentOf(reader(headers)), headers.traceparent).toEqual(expected);
    }
  });

  it('falls back to B3 when traceparent is invalid', () => {
    const parent = remoteParentOf(reader({ traceparent: 'garbage', b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' }));
    expect(parent?.traceId).toBe('80f198ee56343ba864fe8b2a57d3eff7');
  });
});
