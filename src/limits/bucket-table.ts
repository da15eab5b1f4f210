/**
 * A compact map from bucket key to one number (the time the bucket is full
 * again), in recency order, kept in typed arrays outside the JS heap: about
 * 33 bytes a bucket instead of ~85 in a Map, and nothing for the garbage
 * collector to trace however many buckets there are.
 *
 * Keys are stored as 64-bit fingerprints, not as strings. Two distinct keys
 * share a bucket only if both 32-bit halves collide: about 3 in 10^8 for a
 * whole table of a million keys. Collisions give an attacker nothing: the
 * keys are request header values, so whoever could craft a colliding key
 * could send the other customer's id itself.
 *
 * Layout: entries (fingerprint, value, older/newer links) live in parallel
 * arrays; an open-addressing index with linear probing maps a fingerprint to
 * its entry and is kept at most half full. Deleting shifts the probe chain
 * back, so there are no tombstones. The arrays double when full and halve
 * when a quarter full.
 */
export class BucketTable {
  private static readonly minCapacity = 1024;

  private capacity = 0;
  private slots = new Int32Array(0);
  private high = new Uint32Array(0);
  private low = new Uint32Array(0);
  private values = new Float64Array(0);
  private older = new Int32Array(0);
  private newer = new Int32Array(0);
  private oldestEntry = -1;
  private newestEntry = -1;
  private freeEntry = -1;
  private allocated = 0;
  private count = 0;

  // The fingerprint of the last key looked up: a charge follows a lookup of the same key.
  private lastKey: string | undefined;
  private lastHigh = 0;
  private lastLow = 0;

  constructor() {
    this.resize(BucketTable.minCapacity);
  }

  get size(): number {
    return this.count;
  }

  /** The key's value, or undefined if the table does not hold it. */
  get(key: string): number | undefined {
    const entry = this.find(key);
    return entry < 0 ? undefined : this.values[entry];
  }

  /** Sets the key's value and makes it the most recently used entry. */
  set(key: string, value: number): void {
    let entry = this.find(key);
    if (entry < 0) {
      entry = this.insert(this.lastHigh, this.lastLow);
    } else {
      this.unlink(entry);
    }
    this.values[entry] = value;
    this.linkNewest(entry);
  }

  delete(key: string): boolean {
    const entry = this.find(key);
    if (entry < 0) return false;
    this.remove(entry);
    return true;
  }

  /** Drops the least recently used entry; false if the table is empty. */
  deleteOldest(): boolean {
    if (this.oldestEntry < 0) return false;
    this.remove(this.oldestEntry);
    return true;
  }

  /**
   * Looks at up to `limit` of the least recently used entries and drops those
   * whose value is at most `threshold`, stopping at the first that is not.
   */
  deleteOldestWhileAtMost(threshold: number, limit: number): void {
    for (let looked = 0; looked < limit && this.oldestEntry >= 0; looked++) {
      if (this.values[this.oldestEntry]! > threshold) return;
      this.remove(this.oldestEntry);
    }
  }

  clear(): void {
    this.oldestEntry = -1;
    this.resize(BucketTable.minCapacity);
  }

  /** Bytes held by the arrays (for tests and the memory bench). */
  get byteLength(): number {
    return this.slots.byteLength + this.high.byteLength + this.low.byteLength + this.values.byteLength + this.older.byteLength + this.newer.byteLength;
  }

  private find(key: string): number {
    if (key !== this.lastKey) {
      fingerprint(key);
      this.lastKey = key;
      this.lastHigh = fingerprintHigh;
      this.lastLow = fingerprintLow;
    }
    const high = this.lastHigh;
    const low = this.lastLow;
    const mask = this.slots.length - 1;
    for (let slot = high & mask; ; slot = (slot + 1) & mask) {
      const stored = this.slots[slot]!;
      if (stored === 0) return -1;
      const entry = stored - 1;
      if (this.high[entry] === high && this.low[entry] === low) return entry;
    }
  }

  private insert(high: number, low: number): number {
    if (this.freeEntry < 0 && this.allocated === this.capacity) this.resize(this.capacity * 2);
    let entry: number;
    if (this.freeEntry >= 0) {
      entry = this.freeEntry;
      this.freeEntry = this.newer[entry]!;
    } else {
      entry = this.allocated++;
    }
    this.high[entry] = high;
    this.low[entry] = low;
    const mask = this.slots.length - 1;
    let slot = high & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entry + 1;
    this.count++;
    return entry;
  }

  private remove(entry: number): void {
    this.unlink(entry);
    this.removeFromIndex(entry);
    this.newer[entry] = this.freeEntry;
    this.freeEntry = entry;
    this.count--;
    if (this.count * 4 < this.capacity && this.capacity > BucketTable.minCapacity) this.resize(this.capacity / 2);
  }

  private removeFromIndex(entry: number): void {
    const mask = this.slots.length - 1;
    let hole = this.high[entry]! & mask;
    while (this.slots[hole] !== entry + 1) hole = (hole + 1) & mask;
    // Backward-shift deletion: move later members of the probe chain into the hole
    // whenever their home slot is not between the hole and where they sit.
    for (let next = (hole + 1) & mask; this.slots[next] !== 0; next = (next + 1) & mask) {
      const home = this.high[this.slots[next]! - 1]! & mask;
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        this.slots[hole] = this.slots[next]!;
        hole = next;
      }
    }
    this.slots[hole] = 0;
  }

  private unlink(entry: number): void {
    const older = this.older[entry]!;
    const newer = this.newer[entry]!;
    if (older >= 0) this.newer[older] = newer;
    else this.oldestEntry = newer;
    if (newer >= 0) this.older[newer] = older;
    else this.newestEntry = older;
  }

  private linkNewest(entry: number): void {
    this.older[entry] = this.newestEntry;
    this.newer[entry] = -1;
    if (this.newestEntry >= 0) this.newer[this.newestEntry] = entry;
    else this.oldestEntry = entry;
    this.newestEntry = entry;
  }

  /** Rebuilds the arrays at `capacity` entries, renumbering live entries oldest first. */
  private resize(capacity: number): void {
    const high = new Uint32Array(capacity);
    const low = new Uint32Array(capacity);
    const values = new Float64Array(capacity);
    const older = new Int32Array(capacity);
    const newer = new Int32Array(capacity);
    const slots = new Int32Array(capacity * 2);
    const mask = slots.length - 1;
    let count = 0;
    for (let entry = this.oldestEntry; entry >= 0; entry = this.newer[entry]!) {
      const entryHigh = this.high[entry]!;
      high[count] = entryHigh;
      low[count] = this.low[entry]!;
      values[count] = this.values[entry]!;
      older[count] = count - 1;
      newer[count] = count + 1;
      let slot = entryHigh & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = count + 1;
      count++;
    }
    if (count > 0) newer[count - 1] = -1;
    this.capacity = capacity;
    this.slots = slots;
    this.high = high;
    this.low = low;
    this.values = values;
    this.older = older;
    this.newer = newer;
    this.oldestEntry = count > 0 ? 0 : -1;
    this.newestEntry = count - 1;
    this.freeEntry = -1;
    this.allocated = count;
    this.count = count;
  }
}

let fingerprintHigh = 0;
let fingerprintLow = 0;

/**
 * Two independent 32-bit hashes of the key's UTF-16 code units (FNV-1a and a
 * MurmurHash3-style mix, each finished with Murmur's avalanche), written to
 * the two module variables above so the hot path allocates nothing.
 */
function fingerprint(key: string): void {
  let high = 0x811c9dc5;
  let low = 0x9747b28c;
  for (let index = 0; index < key.length; index++) {
    const unit = key.charCodeAt(index);
    high = Math.imul(high ^ unit, 0x01000193);
    let mixed = Math.imul(unit, 0xcc9e2d51);
    mixed = Math.imul((mixed << 15) | (mixed >>> 17), 0x1b873593);
    low ^= mixed;
    low = (Math.imul((low << 13) | (low >>> 19), 5) + 0xe6546b64) | 0;
  }
  fingerprintHigh = avalanche(high ^ key.length);
  fingerprintLow = avalanche(low ^ key.length);
}

function avalanche(hash: number): number {
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
