import type { Counter, Histogram } from 'prom-client';

/**
 * prom-client finds a series by a string it builds from the label values on
 * every inc() or observe() (`name:value,` per label): about 1 KB of garbage a
 * decision for genops_requests_total alone. These helpers build each series'
 * child once and find it again through one Map per label, so counting a
 * known series allocates nothing. The number of cached children is the
 * number of series, which the callers already bound (bounded-label.ts).
 */
type Trie<T> = Map<string, Trie<T> | T>;

function childCache<L extends string, T>(labelNames: readonly L[], make: (labels: Partial<Record<L, string>>) => T): (labels: Partial<Record<L, string>>) => T {
  const root: Trie<T> = new Map();
  const last = labelNames.length - 1;
  return (labels) => {
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
}

/** The label names the metric was created with (prom-client keeps them on the instance). */
function labelNamesOf<L extends string>(metric: Counter<L> | Histogram<L>): readonly L[] {
  return (metric as unknown as { labelNames: L[] }).labelNames;
}

/** `inc(labels, value)` through cached children; an absent label counts as "". */
export function createCounterChildren<L extends string>(counter: Counter<L>): (labels: Partial<Record<L, string>>, value?: number) => void {
  const childOf = childCache(labelNamesOf(counter), (labels) => counter.labels(labels));
  return (labels, value = 1) => childOf(labels).inc(value);
}

/** `observe(labels, value)` through cached children; an absent label counts as "". */
export function createHistogramChildren<L extends string>(histogram: Histogram<L>): (labels: Partial<Record<L, string>>, value: number) => void {
  const childOf = childCache(labelNamesOf(histogram), (labels) => histogram.labels(labels));
  return (labels, value) => childOf(labels).observe(value);
}
