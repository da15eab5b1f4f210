import type { HeaderLookup } from '../governance/governance-context.js';
import type { HeaderMap } from './envoy-messages.js';

/**
 * Builds a lookup from Envoy's HeaderMap. Envoy fills raw_value (bytes) and
 * leaves value empty; older senders fill value. Repeated headers are joined
 * with "," as HTTP does, so a doubled governance header fails validation
 * instead of silently picking one of its values.
 */
export function lookupFromHeaderMap(map: HeaderMap | undefined): HeaderLookup {
  const collected: Record<string, string> = {};
  for (const header of map?.headers ?? []) {
    if (!header.key) continue;
    const key = header.key.toLowerCase();
    const raw = header.raw_value;
    const value = typeof raw === 'string' ? raw : raw && raw.length > 0 ? textOf(raw) : (header.value ?? '');
    collected[key] = Object.hasOwn(collected, key) ? `${collected[key]},${value}` : value;
  }
  return (name) => (Object.hasOwn(collected, name) ? collected[name] : undefined);
}

/** Builds a lookup from ext_authz's header map, keyed by lowercase name. */
export function lookupFromRecord(record: Record<string, string> | undefined): HeaderLookup {
  const map = record ?? {};
  return (name) => (Object.hasOwn(map, name) ? map[name] : undefined);
}

/** The decoder hands over Buffers (views into the message): read them in place, never copied. */
function textOf(raw: Buffer | Uint8Array): string {
  return (Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).toString('utf8');
}
