/**
 * The request bodies the service holds before deciding (one round trip: FULL_DUPLEX_STREAMED sends
 * them without flow control), bounded in total. Each body is bounded by the policy's
 * maxRequestBodyBytes; without this bound, many slow uploads at once would hold that many times
 * over. Past the bound the largest bodies are let go first: a request that is still small (nearly
 * every AI call) keeps being served while the uploads that hold the most are refused.
 */
export interface HeldBody {
  /** Bytes held now (the session's count). */
  readonly bytes: number;
  readonly chunks: Buffer[];
  /** Let go to keep the total bound: its chunks were dropped; the session refuses the request. */
  evicted: boolean;
}

export interface HeldRequestBodies {
  /** `body` holds `added` more bytes (already counted in body.bytes). Past the bound, evicts the largest until the total fits. */
  grew(body: HeldBody, added: number): void;
  /** `body` is no longer held (decided, refused, or its stream ended). */
  release(body: HeldBody): void;
  /** Bytes held now, over all bodies. */
  readonly bytes: number;
}

export interface HeldRequestBodiesOptions {
  readonly maxBytes: number;
  /** A body was evicted (for a metric or a log). */
  readonly evicted?: ((bytes: number) => void) | undefined;
  /** The total changed (for a gauge). */
  readonly changed?: ((bytes: number) => void) | undefined;
}

export const DEFAULT_MAX_HELD_REQUEST_BYTES = 256 * 1024 * 1024;

export function createHeldRequestBodies(options: HeldRequestBodiesOptions): HeldRequestBodies {
  const held = new Map<HeldBody, number>();
  let total = 0;

  function drop(body: HeldBody): void {
    const bytes = held.get(body);
    if (bytes === undefined) return;
    held.delete(body);
    total -= bytes;
  }

  return {
    grew(body, added) {
      if (body.evicted) return;
      held.set(body, (held.get(body) ?? 0) + added);
      total += added;
      while (total > options.maxBytes) {
        let largest: HeldBody | undefined;
        let largestBytes = -1;
        for (const [candidate, bytes] of held) {
          if (bytes > largestBytes) {
            largest = candidate;
            largestBytes = bytes;
          }
        }
        if (!largest) break;
        drop(largest);
        largest.evicted = true;
        largest.chunks.length = 0;
        options.evicted?.(largestBytes);
      }
      options.changed?.(total);
    },
    release(body) {
      const before = total;
      drop(body);
      if (total !== before) options.changed?.(total);
    },
    get bytes() {
      return total;
    },
  };
}
