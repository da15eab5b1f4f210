import { PerformanceObserver, constants, monitorEventLoopDelay, type ELDHistogram as IntervalHistogram } from 'node:perf_hooks';
import { Histogram, type Registry } from 'prom-client';

/**
 * What the runtime does to the tail, as operators need it: pauses of the
 * garbage collector by kind, and how late the event loop ran.
 *
 * prom-client's default metrics have both, in forms that cannot answer "what
 * is my p99 made of": nodejs_gc_duration_seconds starts at a 1 ms bucket
 * (every scavenge of a sidecar falls into it) and records only the first
 * entry of each observer callback, so pauses that arrive together are lost;
 * nodejs_eventloop_lag_p99_seconds and friends are gauges reset at each
 * scrape, which two scrapers (or one missed scrape) make meaningless and
 * which cannot be summed across replicas. These two are cumulative
 * histograms with sub-millisecond buckets, so rate() and
 * histogram_quantile() work on them.
 */
export interface RuntimeMetrics {
  readonly gcPause: Histogram<'kind'>;
  readonly eventLoopDelay: Histogram<never>;
  /** Stops observing (tests; the service keeps them for its lifetime). */
  stop(): void;
}

/** Seconds: 50 µs (a small scavenge) up to 1 s (a full mark-compact of a large heap). */
export const GC_PAUSE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Seconds: the event loop ran this late (a timer at a fixed resolution measures it). */
export const EVENT_LOOP_DELAY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

export interface RuntimeMetricsOptions {
  readonly registry: Registry;
  /** Sampling interval of the event-loop delay monitor, ms. Default 10 (prom-client's too). */
  readonly eventLoopResolutionMs?: number;
}

export function createRuntimeMetrics(options: RuntimeMetricsOptions): RuntimeMetrics {
  const { registry } = options;
  const gcPause = new Histogram({
    name: 'genops_gc_pause_seconds',
    help: 'Garbage-collection pauses of the service process by kind (minor = scavenge, major = mark-compact, incremental, weakcb).',
    labelNames: ['kind'],
    buckets: GC_PAUSE_BUCKETS,
    registers: [registry],
  });
  for (const kind of Object.values(GC_KINDS)) gcPause.zero({ kind });
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = GC_KINDS[(entry as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
      gcPause.observe({ kind }, entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  const resolutionMs = options.eventLoopResolutionMs ?? 10;
  const monitor: IntervalHistogram = monitorEventLoopDelay({ resolution: resolutionMs });
  monitor.enable();
  const eventLoopDelay: Histogram<never> = new Histogram({
    name: 'genops_eventloop_delay_seconds',
    help: 'How late the event loop ran: a timer every 10 ms (perf_hooks.monitorEventLoopDelay), its delay past that interval.',
    buckets: EVENT_LOOP_DELAY_BUCKETS,
    registers: [registry],
    // Moves the samples recorded since the last scrape into the histogram.
    collect() {
      drainInto(monitor, eventLoopDelay, resolutionMs * 1e6);
    },
  });

  return {
    gcPause,
    eventLoopDelay,
    stop() {
      observer.disconnect();
      monitor.disable();
    },
  };
}

/**
 * The monitor keeps an HDR histogram (ns, 3 significant digits) of the
 * intervals between its timer's runs, so an idle loop reads ~10 ms: the
 * delay is the interval minus the resolution. For each bucket bound, the
 * share of samples at or below it is found by bisecting percentile(); the
 * samples of each bucket are then observed at the percentile in the middle
 * of their range, so the bucket counts are the monitor's and the sum is
 * close to it.
 */
function drainInto(monitor: IntervalHistogram, histogram: Histogram<never>, resolutionNs: number): void {
  const count = monitor.count;
  if (count === 0) return;
  let emitted = 0;
  let fromPercentile = 0;
  for (const bound of [...EVENT_LOOP_DELAY_BUCKETS, Infinity]) {
    const toPercentile = bound === Infinity ? 100 : shareAtOrBelow(monitor, bound * 1e9 + resolutionNs);
    const upTo = bound === Infinity ? count : Math.round((count * toPercentile) / 100);
    if (upTo > emitted) {
      const seconds = Math.min(Math.max(0, monitor.percentile(Math.max((fromPercentile + toPercentile) / 2, 1e-9)) - resolutionNs) / 1e9, bound);
      for (; emitted < upTo; emitted++) histogram.observe(seconds);
    }
    fromPercentile = toPercentile;
  }
  monitor.reset();
}

/** The largest percentile (0–100) whose value is at most `nanoseconds`. */
function shareAtOrBelow(monitor: IntervalHistogram, nanoseconds: number): number {
  if (monitor.max <= nanoseconds) return 100;
  if (monitor.min > nanoseconds) return 0;
  let low = 0;
  let high = 100;
  for (let step = 0; step < 24; step++) {
    const middle = (low + high) / 2;
    if (monitor.percentile(Math.max(middle, 1e-9)) <= nanoseconds) low = middle;
    else high = middle;
  }
  return low;
}
