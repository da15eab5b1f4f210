/**
 * Keeps the set of distinct values of one metric label bounded: the first
 * `limit` values pass through, every later one collapses into `overflow`.
 * Unbounded label cardinality takes Prometheus down; this makes it impossible.
 */
export interface BoundedLabel {
  /** `mayAdd: false` maps a value not seen before to `overflow` without taking a slot. */
  (value: string | undefined, mayAdd?: boolean): string;
}

export function createBoundedLabel(limit: number, overflow = '_other', absent = ''): BoundedLabel {
  const seen = new Set<string>();
  return (value, mayAdd = true) => {
    if (value === undefined) return absent;
    if (seen.has(value)) return value;
    if (!mayAdd || seen.size >= limit) return overflow;
    seen.add(value);
    return value;
  };
}
