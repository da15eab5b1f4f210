import type { Governor } from './governor.js';

/**
 * The governor an adapter uses when its proxy strips client-sent JWT payload headers before
 * verifying (the operator says so: GENOPS_TRUST_PAYLOAD_HEADER). Other adapters use the plain
 * governor, whose inputs never carry the flag: there the header is never read. `withoutJwtMetadata`:
 * the adapter has no metadata channel (forward auth), so the header is its only source.
 */
export function withPayloadHeaderTrust(governor: Governor, trusted: boolean, options: { withoutJwtMetadata?: boolean } = {}): Governor {
  if (!trusted) return governor;
  const withoutJwtMetadata = options.withoutJwtMetadata ?? false;
  return { evaluate: (input) => governor.evaluate({ ...input, payloadHeaderTrusted: true, withoutJwtMetadata }) };
}
