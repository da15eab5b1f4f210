import { Counter, Histogram, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCounterChildren, createHistogramChildren } from '../../src/telemetry/labelled-children.js';
import { createRuntimeMetrics, type RuntimeMetrics } from '../../src/telemetry/runtime-metrics.js';

const running: RuntimeMetrics[] = [];
afterEach(() => {
  for (const metrics of running.splice(0)) metrics.stop();
});

function sample(text: string, line: string): number {
  const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  if (found === undefined) throw new Error(`no sample ${line} in:\n${text}`);
  return Number(found.slice(found.lastIndexOf(' ') + 1));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('runtime metrics (genops_gc_pause_seconds, genops_eventloop_delay_seconds)', () => {
  it('counts every scavenge by kind, and a blocked event loop lands in the buckets of its delay', async () => {
    const registry = new Registry();
    running.push(createRuntimeMetrics({ registry }));
    // Garbage enough for several scavenges; the observer delivers their entries asynchronously.
    let keep: unknown[] = [];
    for (let i = 0; i < 400_000; i++) {
      keep.push({ i, text: `item-${i}` });
      if (keep.length > 1_000) keep = [];
    }
    await sleep(60);
    // An idle loop, then one 120 ms stall the 10 ms monitor timer must see.
    const blockedUntil = performance.now() + 120;
    while (performance.now() < blockedUntil) {
      // busy: the event loop is blocked
    }
    await sleep(80);
    const text = await registry.metrics();
    expect(sample(text, 'genops_gc_pause_seconds_count{kind="minor"}')).toBeGreaterThan(1);
    expect(sample(text, 'genops_gc_pause_seconds_sum{kind="minor"}')).toBeGreaterThan(0);
    const count = sample(text, 'genops_eventloop_delay_seconds_count');
    expect(count).toBeGreaterThan(5);
    // Most samples were taken on an idle loop: the delay (the interval less the 10 ms resolution), not
    // the interval, is what is recorded, so they sit far below 10 ms (25 ms leaves room for a busy host).
    expect(sample(text, 'genops_eventloop_delay_seconds_bucket{le="0.025"}')).toBeGreaterThanOrEqual(count / 2);
    // The stall: at least one sample above 100 ms, none above 1 s.
    expect(sample(text, 'genops_eventloop_delay_seconds_bucket{le="0.1"}')).toBeLessThan(count);
    expect(sample(text, 'genops_eventloop_delay_seconds_bucket{le="1"}')).toBe(count);
    expect(sample(text, 'genops_eventloop_delay_seconds_sum')).toBeGreaterThan(0.09);
  });

  it('the event-loop histogram is cumulative: samples are moved in at each scrape, never counted twice', async () => {
    const registry = new Registry();
    running.push(createRuntimeMetrics({ registry }));
    await sleep(100);
    const first = sample(await registry.metrics(), 'genops_eventloop_delay_seconds_count');
    const again = sample(await registry.metrics(), 'genops_eventloop_delay_seconds_count');
    await sleep(100);
    const later = sample(await registry.metrics(), 'genops_eventloop_delay_seconds_count');
    expect(first).toBeGreaterThan(3);
    expect(again).toBeLessThanOrEqual(first + 1);
    expect(later).toBeGreaterThan(first + 3);
  });
});

describe('cached label children', () => {
  it('count what inc(labels) counts, an absent label as ""', async () => {
    const registry = new Registry();
    const direct = new Counter({ name: 'direct_total', help: 'h', labelNames: ['service', 'decision', 'tier'], registers: [registry] });
    const cached = new Counter({ name: 'cached_total', help: 'h', labelNames: ['service', 'decision', 'tier'], registers: [registry] });
    const inc = createCounterChildren(cached);
    const calls = [
      { service: 'authz', decision: 'ALLOWED', tier: 'premium' },
      { service: 'authz', decision: 'ALLOWED', tier: 'premium' },
      { service: 'authz', decision: 'BLOCKED', tier: '' },
      { service: 'ext_proc', decision: 'ALLOWED', tier: 'basic' },
    ];
    for (const labels of calls) {
      direct.inc(labels);
      inc(labels);
    }
    inc({ service: 'authz', decision: 'BLOCKED' }, 2);
    direct.inc({ service: 'authz', decision: 'BLOCKED', tier: '' }, 2);
    const text = await registry.metrics();
    const series = (name: string) => text.split('\n').filter((line) => line.startsWith(`${name}{`)).map((line) => line.slice(name.length)).sort();
    expect(series('cached_total')).toEqual(series('direct_total'));
    expect(series('cached_total')).toContain('{service="authz",decision="BLOCKED",tier=""} 3');

    const histogram = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['service'], buckets: [0.1, 1], registers: [registry] });
    const observe = createHistogramChildren(histogram);
    observe({ service: 'authz' }, 0.05);
    observe({ service: 'authz' }, 0.5);
    const after = await registry.metrics();
    expect(sample(after, 'h_seconds_bucket{le="0.1",service="authz"}')).toBe(1);
    expect(sample(after, 'h_seconds_count{service="authz"}')).toBe(2);
  });

  it('cached series keep counting exactly as prom-client does after a removal, a reset and values above every bucket', async () => {
    const registry = new Registry();
    const direct = new Counter({ name: 'direct_total', help: 'h', labelNames: ['team'], registers: [registry] });
    const cached = new Counter({ name: 'cached_total', help: 'h', labelNames: ['team'], registers: [registry] });
    const inc = createCounterChildren(cached);
    const both = (labels: { team: string }, value?: number) => {
      direct.inc(labels, value ?? 1);
      inc(labels, value);
    };
    both({ team: 'a' });
    both({ team: 'a' }, 2.5);
    both({ team: 'b' }, 0);
    direct.remove({ team: 'a' });
    cached.remove({ team: 'a' });
    both({ team: 'a' }, 4);
    both({ team: 'b' });
    expect(() => inc({ team: 'b' }, -1)).toThrow();
    const series = (text: string, name: string) => text.split('\n').filter((line) => line.startsWith(`${name}{`)).map((line) => line.slice(name.length)).sort();
    let text = await registry.metrics();
    expect(series(text, 'cached_total')).toEqual(['{team="a"} 4', '{team="b"} 1']);
    expect(series(text, 'cached_total')).toEqual(series(text, 'direct_total'));
    cached.reset();
    inc({ team: 'b' }, 3);
    text = await registry.metrics();
    expect(series(text, 'cached_total')).toEqual(['{team="b"} 3']);

    const plain = new Histogram({ name: 'plain_seconds', help: 'h', labelNames: ['service'], buckets: [0.1, 1], registers: [registry] });
    const histogram = new Histogram({ name: 'fast_seconds', help: 'h', labelNames: ['service'], buckets: [0.1, 1], registers: [registry] });
    const observe = createHistogramChildren(histogram);
    for (const value of [0.05, 0.1, 0.5, 1, 7, 0]) {
      plain.observe({ service: 'authz' }, value);
      observe({ service: 'authz' }, value);
    }
    histogram.reset();
    plain.reset();
    for (const value of [2, 0.2]) {
      plain.observe({ service: 'authz' }, value);
      observe({ service: 'authz' }, value);
    }
    expect(() => observe({ service: 'authz' }, Number.NaN)).toThrow();
    // A series that prom-client already held (observed with another labels object) is found by its values.
    histogram.observe({ service: 'ext_proc' }, 0.05);
    plain.observe({ service: 'ext_proc' }, 0.05);
    for (const value of [0.5, 3]) {
      plain.observe({ service: 'ext_proc' }, value);
      observe({ service: 'ext_proc' }, value);
    }
    text = await registry.metrics();
    expect(series(text, 'fast_seconds_bucket').length).toBe(6);
    expect(sample(text, 'fast_seconds_count{service="ext_proc"}')).toBe(3);
    expect(series(text, 'fast_seconds_bucket')).toEqual(series(text, 'plain_seconds_bucket'));
    expect(sample(text, 'fast_seconds_sum{service="authz"}')).toBe(sample(text, 'plain_seconds_sum{service="authz"}'));
    expect(sample(text, 'fast_seconds_count{service="authz"}')).toBe(2);
  });
});
