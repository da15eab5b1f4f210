/**
 * The runtime's share of the tail during one scenario, from genops-mesh's own
 * /metrics (src/telemetry/runtime-metrics.ts and prom-client's defaults):
 * garbage-collection pauses by kind and event-loop delay.
 */
export interface RuntimeSnapshot {
  /** genops_gc_pause_seconds by kind: count, sum (s) and cumulative bucket counts by upper bound. */
  readonly gc: Record<string, { count: number; sumS: number; buckets: Map<number, number> }>;
  /** prom-client's event-loop gauges since the previous scrape of /metrics, less the monitor's 10 ms interval (they read the interval, not the delay). */
  readonly eventLoop: { p50S: number; p99S: number; maxS: number };
}

export interface RuntimeWindow {
  /** Per GC kind over the window: pauses, total and mean pause, and the bucket bound holding the 99th percentile pause. */
  readonly gc: Record<string, { count: number; totalMs: number; meanMs: number; p99AtMostMs: number | undefined }>;
  /** Share of wall time the process stood in GC pauses, %. */
  readonly gcPausePercent: number;
  /** Event-loop delay over the window (monitorEventLoopDelay sampled every 10 ms): p50, p99, max, ms. */
  readonly eventLoopDelayMs: { p50: number; p99: number; max: number };
}

export async function readRuntime(adminUrl: string): Promise<RuntimeSnapshot> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const gc: RuntimeSnapshot['gc'] = {};
  const eventLoop = { p50S: 0, p99S: 0, maxS: 0 };
  const entry = (kind: string) => (gc[kind] ??= { count: 0, sumS: 0, buckets: new Map() });
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('genops_gc_pause_seconds')) {
      const kind = /kind="([^"]*)"/.exec(line)?.[1] ?? 'other';
      if (line.startsWith('genops_gc_pause_seconds_bucket')) {
        const bound = /le="([^"]*)"/.exec(line)?.[1] ?? '+Inf';
        entry(kind).buckets.set(bound === '+Inf' ? Infinity : Number(bound), value);
      } else if (line.startsWith('genops_gc_pause_seconds_sum')) entry(kind).sumS = value;
      else if (line.startsWith('genops_gc_pause_seconds_count')) entry(kind).count = value;
    } else if (line.startsWith('nodejs_eventloop_lag_p50_seconds')) eventLoop.p50S = value;
    else if (line.startsWith('nodejs_eventloop_lag_p99_seconds')) eventLoop.p99S = value;
    else if (line.startsWith('nodejs_eventloop_lag_max_seconds')) eventLoop.maxS = value;
  }
  return { gc, eventLoop };
}

/** What happened between two snapshots taken `seconds` apart (the event-loop figures are those of `after`). */
export function runtimeWindow(before: RuntimeSnapshot, after: RuntimeSnapshot, seconds: number): RuntimeWindow {
  const gc: Record<string, RuntimeWindow['gc'][string]> = {};
  let pausedS = 0;
  for (const [kind, end] of Object.entries(after.gc)) {
    const start = before.gc[kind] ?? { count: 0, sumS: 0, buckets: new Map<number, number>() };
    const count = end.count - start.count;
    if (count <= 0) continue;
    const totalS = end.sumS - start.sumS;
    pausedS += totalS;
    let p99AtMostMs: number | undefined;
    for (const [bound, cumulative] of [...end.buckets].sort((a, b) => a[0] - b[0])) {
      if (cumulative - (start.buckets.get(bound) ?? 0) >= 0.99 * count) {
        p99AtMostMs = bound === Infinity ? undefined : bound * 1000;
        break;
      }
    }
    gc[kind] = { count, totalMs: round2(totalS * 1000), meanMs: round2((totalS * 1000) / count), p99AtMostMs };
  }
  return {
    gc,
    gcPausePercent: round2((pausedS / seconds) * 100),
    eventLoopDelayMs: { p50: delayMs(after.eventLoop.p50S), p99: delayMs(after.eventLoop.p99S), max: delayMs(after.eventLoop.maxS) },
  };
}

/** Rounds of one scenario in one: counts and totals summed, percentiles the worst round's. */
export function mergeRuntimeWindows(windows: readonly RuntimeWindow[]): RuntimeWindow | undefined {
  if (windows.length === 0) return undefined;
  const gc: Record<string, RuntimeWindow['gc'][string]> = {};
  for (const window of windows) {
    for (const [kind, figures] of Object.entries(window.gc)) {
      const merged = gc[kind];
      if (!merged) gc[kind] = { ...figures };
      else {
        const count = merged.count + figures.count;
        const totalMs = round2(merged.totalMs + figures.totalMs);
        const bounds = [merged.p99AtMostMs, figures.p99AtMostMs];
        gc[kind] = { count, totalMs, meanMs: round2(totalMs / count), p99AtMostMs: bounds.includes(undefined) ? undefined : Math.max(...(bounds as number[])) };
      }
    }
  }
  const worst = (pick: (window: RuntimeWindow) => number) => Math.max(...windows.map(pick));
  return {
    gc,
    gcPausePercent: round2(windows.reduce((sum, window) => sum + window.gcPausePercent, 0) / windows.length),
    eventLoopDelayMs: { p50: worst((w) => w.eventLoopDelayMs.p50), p99: worst((w) => w.eventLoopDelayMs.p99), max: worst((w) => w.eventLoopDelayMs.max) },
  };
}

/** prom-client samples with monitorEventLoopDelay at 10 ms (its default eventLoopMonitoringPrecision). */
const MONITOR_INTERVAL_S = 0.01;

function delayMs(intervalS: number): number {
  return round2(Math.max(0, intervalS - MONITOR_INTERVAL_S) * 1000);
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
