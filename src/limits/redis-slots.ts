import calculateSlot from 'cluster-key-slot';

/**
 * Splits items into groups whose keys share one Redis Cluster slot, in
 * first-seen order: a script may only touch the keys of one slot. On one node
 * (`bySlot` false) everything is one group, as before.
 */
export function groupBySlot<T>(items: readonly T[], keyOf: (item: T) => string, bySlot: boolean): { readonly items: T[]; readonly indexes: number[] }[] {
  if (!bySlot || items.length < 2) return [{ items: [...items], indexes: items.map((_, index) => index) }];
  const groups = new Map<number, { items: T[]; indexes: number[] }>();
  items.forEach((item, index) => {
    const slot = calculateSlot(keyOf(item));
    let group = groups.get(slot);
    if (!group) groups.set(slot, (group = { items: [], indexes: [] }));
    group.items.push(item);
    group.indexes.push(index);
  });
  return [...groups.values()];
}

/**
 * Caller text made safe inside a {hash tag}: braces (and the escape character) percent-encoded, so
 * the tag Redis Cluster hashes is the whole text, never a prefix cut at a "}" in it.
 */
export function escapeHashTag(text: string): string {
  return text.replace(/[%{}]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}
