import type { BindingMode, IdentityField, IdentityPolicy } from './identity-schema.js';
import type { PolicyMode } from './policy-schema.js';

/** `spec.identity` in the shape the identity binding evaluates. */
export interface CompiledIdentity {
  /** The jwt_authn metadata key: the only source on adapters that carry metadata. Undefined when only a payload header is named. */
  readonly metadataKey: string | undefined;
  readonly payloadHeader: string | undefined;
  readonly issuers: ReadonlySet<string> | undefined;
  readonly audiences: ReadonlySet<string> | undefined;
  /** true: every request; a list: requests whose path starts with one of them; false: none. */
  readonly required: boolean | readonly string[];
  readonly claims: readonly CompiledClaimBinding[];
  readonly peerTeam: BindingMode | undefined;
  readonly mode: PolicyMode;
}

export interface CompiledClaimBinding {
  readonly field: IdentityField;
  /** As written in the policy, for messages and the decision log. */
  readonly claim: string;
  /** Candidate paths, tried in order: the whole name as one key first, then split on dots. */
  readonly paths: readonly (readonly string[])[];
  readonly mode: BindingMode;
  readonly prefix: string | undefined;
}

/** jwt_authn's payload_in_metadata key in the shipped Envoy configs. */
export const DEFAULT_METADATA_KEY = 'jwt_payload';

export function compileIdentity(identity: IdentityPolicy | undefined, effective: (mode: PolicyMode | undefined) => PolicyMode): CompiledIdentity | undefined {
  if (!identity) return undefined;
  const claims: CompiledClaimBinding[] = [];
  for (const [field, binding] of Object.entries(identity.claims) as [IdentityField, NonNullable<IdentityPolicy['claims'][IdentityField]>][]) {
    const claim = Array.isArray(binding.claim) ? binding.claim.join('.') : binding.claim;
    const paths = Array.isArray(binding.claim)
      ? [binding.claim]
      : binding.claim.includes('.') ? [[binding.claim], binding.claim.split('.')] : [[binding.claim]];
    claims.push({ field, claim, paths, mode: binding.mode, prefix: binding.prefix });
  }
  const required = identity.required;
  return {
    metadataKey: identity.jwt.metadataKey ?? (identity.jwt.payloadHeader === undefined ? DEFAULT_METADATA_KEY : undefined),
    payloadHeader: identity.jwt.payloadHeader,
    issuers: identity.jwt.issuers ? new Set(identity.jwt.issuers) : undefined,
    audiences: identity.jwt.audiences ? new Set(identity.jwt.audiences) : undefined,
    required: typeof required === 'boolean' ? required : required.paths,
    claims,
    peerTeam: identity.peer?.team,
    mode: effective(identity.mode),
  };
}
