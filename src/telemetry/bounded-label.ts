/**
 * Keeps the set of distinct values of one metric label bounded, and keeps the values in use:
 * up to `limit` values have series of their own; a new value past the limit takes the slot of
 * the least recently used one — provided that one has been idle for `minIdleMs` — and
 * otherwise counts as `overflow`. So a burst of junk values cannot push the values in use into
 * `_other` (they are not idle), and cannot hold their slots once they stop (they become idle).
 * The evicted value's series are removed through `onEvict`: unbounded label cardinality takes
 * Prometheus down, and so would series that are never removed.
 */
export interface BoundedLabel {
  /** `mayAdd: false` maps a value not seen before to `overflow` without taking a slot. */
  (value: string | undefined, mayAdd?: boolean): string;
}

export interface BoundedLabelOptions {
  readonly overflow?: string;
  readonly absent?: string;
  /** How long a value must go unused before a new value may take its slot. Default 5 minutes: a few scrapes see its last count. */
  readonly minIdleMs?: number;
  /** Milliseconds; default a clock that ticks once a second (idle times are minutes; reading a real clock per label costs more than the lookup). */
  readonly now?: () => number;
  /** A value lost its slot: remove its series. */
  readonly onEvict?: (value: string) => void;
  /** A sample counted as `overflow` (a new value with no slot free). */
  readonly onOverflow?: () => void;
}

export const DEFAULT_MIN_IDLE_MS = 5 * 60_000;

export function createBoundedLabel(limit: number, options: BoundedLabelOptions = {}): BoundedLabel {
  const { overflow = '_other', absent = '', minIdleMs = DEFAULT_MIN_IDLE_MS, now = coarseNow, onEvict, onOverflow } = options;
  const lastUsed = new Map<string, number>();
  // A scan for the least recently used value happens only when a new value arrives with every
  // slot taken, and while none is idle at most once until the oldest can be: a flood of new
  // values costs a lookup each, not a scan each.
  let noneIdleUntil = -Infinity;
  return (value, mayAdd = true) => {
    if (value === undefined) return absent;
    const at = now();
    const usedAt = lastUsed.get(value);
    if (usedAt !== undefined) {
      if (usedAt !== at) lastUsed.set(value, at);
      return value;
    }
    if (!mayAdd) return overflow;
    if (lastUsed.size >= limit) {
      if (at < noneIdleUntil) {
        onOverflow?.();
        return overflow;
      }
      let oldest: string | undefined;
      let oldestAt = Infinity;
      for (const [candidate, usedAt] of lastUsed) {
        if (usedAt < oldestAt) {
          oldestAt = usedAt;
          oldest = candidate;
        }
      }
      if (oldest === undefined || at - oldestAt < minIdleMs) {
        // Nobody is idle long enough: the earliest a slot can free up is when the oldest turns idle.
        noneIdleUntil = oldestAt + minIdleMs;
        onOverflow?.();
        return overflow;
      }
      lastUsed.delete(oldest);
      onEvict?.(oldest);
    }
    lastUsed.set(value, at);
    return value;
  };
}

let coarseMs = Date.now();
let ticking: NodeJS.Timeout | undefined;
/** Date.now() to the second, from one unref'd timer per process: a label lookup reads a variable, not the clock. */
function coarseNow(): number {
  if (!ticking) {
    coarseMs = Date.now();
    ticking = setInterval(() => {
      coarseMs = Date.now();
    }, 1_000);
    ticking.unref();
  }
  return coarseMs;
}
