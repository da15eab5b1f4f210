import type { BindingMode, IdentityField } from '../policy/identity-schema.js';

/** One field's binding as the decision log reports it. */
export interface BindingResult {
  readonly field: IdentityField;
  /** `claim <name>` or `peer`. */
  readonly from: string;
  readonly mode: BindingMode;
  readonly result: 'filled' | 'matched' | 'replaced' | 'kept-header' | 'no-claim' | 'ambiguous' | 'refused';
}

/** What the decision log says about identity: which claim (or peer) decided; never the token. */
export interface IdentityOutcome {
  readonly source: 'jwt_metadata' | 'payload_header' | 'none';
  readonly issuer?: string | undefined;
  readonly subject?: string | undefined;
  readonly bindings: readonly BindingResult[];
  /** The claim (or `peer`, `issuer`, `audience`, `token`) behind a refusal. */
  readonly decidedBy?: string | undefined;
}
