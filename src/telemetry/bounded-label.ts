/**
 * Keeps the set of distinct values of one metric label bounded: the first
 * `limit` values pass through, every later one collapses into `overflow`.
 * Unbounded label cardinality takes Prometheus down; this makes it impossible.
 */
export interface BoundedLabel {
  (value: string | undefined): string;
}

export function createBoundedLabel(limit: number, overflow = '_other', absent = ''): BoundedLabel {
  const seen = new Set<string>();
  return (value) => {
    if (value === undefined) return absent;
    if (seen.has(value)) return value;
    if (seen.size >= limit) return overflow;
    seen.add(value);
    return value;
  };
}
