import type { Counter, Gauge, Histogram } from 'prom-client';

/**
 * prom-client finds a series by a string it builds from the label values on
 * every inc() or observe() (`name:value,` per label): about 1 KB of garbage a
 * decision for genops_requests_total alone. These helpers build each series'
 * child once and find it again through one Map per label, so counting a
 * known series allocates nothing. The number of cached children is the
 * number of series, which the callers already bound (bounded-label.ts).
 */
type Trie<T> = Map<string, Trie<T> | T>;

interface ChildCache<L extends string, T> {
  (labels: Partial<Record<L, string>>): T;
  /** Drops the cached children whose `label` is `value`. */
  forget(label: L, value: string): void;
}

function childCache<L extends string, T>(labelNames: readonly L[], make: (labels: Partial<Record<L, string>>) => T): ChildCache<L, T> {
  const root: Trie<T> = new Map();
  const last = labelNames.length - 1;
  const find = (labels: Partial<Record<L, string>>): T => {
    let node = root;
    for (let i = 0; i < last; i++) {
      const value = labels[labelNames[i]!] ?? '';
      let next = node.get(value) as Trie<T> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(value, next);
      }
      node = next;
    }
    const value = labels[labelNames[last]!] ?? '';
    let child = node.get(value) as T | undefined;
    if (child === undefined) {
      // An absent label is the empty string here, as it is in the exposition format.
      const complete: Partial<Record<L, string>> = {};
      for (const name of labelNames) complete[name] = labels[name] ?? '';
      child = make(complete);
      node.set(value, child);
    }
    return child;
  };
  const forget = (label: L, value: string) => {
    const depth = labelNames.indexOf(label);
    if (depth < 0) return;
    const visit = (node: Trie<T>, level: number) => {
      if (level === depth) node.delete(value);
      else for (const next of node.values()) visit(next as Trie<T>, level + 1);
    };
    visit(root, 0);
  };
  return Object.assign(find, { forget });
}

type LabelledMetric<L extends string> = Counter<L> | Histogram<L> | Gauge<L>;

/**
 * Removes every series of `metric` whose `label` is `value` (a label value that lost its slot,
 * bounded-label.ts). A counter that comes back later starts again from 0: Prometheus's rate()
 * and increase() read that as a counter reset, which they handle.
 */
export function removeSeriesWith<L extends string>(metric: LabelledMetric<L>, label: L, value: string): void {
  // prom-client keeps its series in `hashMap` (hash -> { labels }); it has no public "remove where".
  const series = (metric as unknown as { hashMap: Record<string, { labels: Partial<Record<L, string>> }> }).hashMap;
  for (const { labels } of Object.values(series)) if (labels[label] === value) metric.remove(labels as Record<L, string>);
}

/** The label names the metric was created with (prom-client keeps them on the instance). */
function labelNamesOf<L extends string>(metric: Counter<L> | Histogram<L>): readonly L[] {
  return (metric as unknown as { labelNames: L[] }).labelNames;
}

export interface CounterChildren<L extends string> {
  (labels: Partial<Record<L, string>>, value?: number): void;
  /** Removes every series whose `label` is `value`, from the cache and from the counter. */
  forget(label: L, value: string): void;
}

/** `inc(labels, value)` through cached children; an absent label counts as "". */
export function createCounterChildren<L extends string>(counter: Counter<L>): CounterChildren<L> {
  const childOf = childCache(labelNamesOf(counter), (labels) => counterSeries(counter, labels));
  const inc = (labels: Partial<Record<L, string>>, value = 1) => childOf(labels).inc(value);
  return Object.assign(inc, {
    forget(label: L, value: string) {
      childOf.forget(label, value);
      removeSeriesWith(counter, label, value);
    },
  });
}

/** `observe(labels, value)` through cached children; an absent label counts as "". */
export function createHistogramChildren<L extends string>(histogram: Histogram<L>): (labels: Partial<Record<L, string>>, value: number) => void {
  const childOf = childCache(labelNamesOf(histogram), (labels) => histogramSeries(histogram, labels));
  return (labels, value) => childOf(labels).observe(value);
}

/**
 * prom-client's own children (`counter.labels(...)`) still hash and validate their labels on
 * every inc() and observe(): a series here keeps prom-client's key for its labels (computed by
 * prom-client on the first sample) and adds to the series' entry in the metric's `hashMap`
 * directly, as prom-client's inc and observe do. Whenever the entry is not there (first sample,
 * the series removed, the metric reset) or the value is not a plain one, the sample goes
 * through prom-client itself.
 */
interface CounterEntry {
  value: number;
}
interface HistogramEntry {
  sum: number;
  count: number;
  readonly bucketValues: Record<string, number>;
  readonly labels: object;
}
interface PromInternals<E> {
  hashMap: Record<string, E | undefined>;
}

function counterSeries<L extends string>(counter: Counter<L>, labels: Partial<Record<L, string>>): { inc(value: number): void } {
  const internals = counter as unknown as PromInternals<CounterEntry>;
  let hash: string | undefined;
  return {
    inc(value) {
      const entry = hash === undefined ? undefined : internals.hashMap[hash];
      if (entry !== undefined && value >= 0 && value < Infinity) entry.value += value;
      else hash = (counter.inc(labels as Record<L, string>, value) as unknown as { labelHash: string }).labelHash;
    },
  };
}

function histogramSeries<L extends string>(histogram: Histogram<L>, labels: Partial<Record<L, string>>): { observe(value: number): void } {
  const internals = histogram as unknown as PromInternals<HistogramEntry> & { upperBounds: readonly number[] };
  let hash: string | undefined;
  return {
    observe(value) {
      const entry = hash === undefined ? undefined : internals.hashMap[hash];
      if (entry !== undefined && Number.isFinite(value)) {
        entry.sum += value;
        entry.count += 1;
        // The first upper bound at or above the value, as prom-client's findBound; above all of them, only sum and count.
        for (const bound of internals.upperBounds) {
          if (value <= bound) {
            entry.bucketValues[bound] = entry.bucketValues[bound]! + 1;
            break;
          }
        }
        return;
      }
      histogram.observe(labels as Record<L, string>, value);
      // Find the series' key once: the entry whose labels are these (prom-client keeps the object it was first given).
      for (const [key, candidate] of Object.entries(internals.hashMap)) {
        if (candidate !== undefined && sameLabels(candidate.labels as Partial<Record<L, string>>, labels)) {
          hash = key;
          break;
        }
      }
    },
  };
}

function sameLabels<L extends string>(a: Partial<Record<L, string>>, b: Partial<Record<L, string>>): boolean {
  if (a === b) return true;
  const names = Object.keys(b) as L[];
  return names.length === Object.keys(a).length && names.every((name) => a[name] === b[name]);
}
