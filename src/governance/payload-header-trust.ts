import type { Governor } from './governor.js';

/**
 * The governor an adapter uses when its proxy strips client-sent JWT payload headers before
 * verifying (the operator says so: GENOPS_TRUST_PAYLOAD_HEADER). Other adapters use the plain
 * governor, whose inputs never carry the flag: there the header is never read.
 */
export function withPayloadHeaderTrust(governor: Governor, trusted: boolean): Governor {
  if (!trusted) return governor;
  return { evaluate: (input) => governor.evaluate({ ...input, payloadHeaderTrusted: true }) };
}
