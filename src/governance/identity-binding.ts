import type { CompiledClaimBinding, CompiledIdentity } from '../policy/compiled-identity.js';
import type { CompiledTeam } from '../policy/compiled-policy.js';
import type { IdentityField } from '../policy/identity-schema.js';
import type { PolicyMode } from '../policy/policy-schema.js';
import { HEADER_OF_FIELD, normalizeContextValue, type ContextProblem, type GovernanceContext, type HeaderLookup } from './governance-context.js';
import type { ReasonCode } from './decision.js';
import type { BindingResult, IdentityOutcome } from './identity-outcome.js';

/** What the request says about who sent it, as the adapters found it. */
export interface IdentityEvidence {
  /** The `envoy.filters.http.jwt_authn` dynamic-metadata namespace, as plain JSON: verified payloads under their payload_in_metadata keys. */
  readonly jwtMetadata?: Readonly<Record<string, unknown>> | undefined;
  readonly headers: HeaderLookup;
  /** The mTLS peer's identity (SPIFFE id), when Envoy knows it. */
  readonly principal?: string | undefined;
  readonly path?: string | undefined;
  /**
   * Set by the adapter: its proxy removes client-sent copies of the payload header before
   * verifying (GENOPS_TRUST_PAYLOAD_HEADER). Without it the header is never read.
   */
  readonly payloadHeaderTrusted?: boolean | undefined;
  /** The adapter carries no jwt_authn metadata at all (forward auth): a named metadata key cannot apply. */
  readonly withoutJwtMetadata?: boolean | undefined;
}

export interface IdentityViolation {
  readonly reasonCode: Extract<ReasonCode, 'x_identity_required' | 'x_identity_invalid' | 'x_identity_mismatch'>;
  readonly message: string;
  readonly httpStatus: 401 | 403;
  readonly mode: PolicyMode;
}

export interface BoundContext {
  readonly context: GovernanceContext;
  readonly problems: readonly ContextProblem[];
  readonly violation: IdentityViolation | undefined;
  readonly outcome: IdentityOutcome;
}

/**
 * Binds the header context to the verified identity the policy names: fills,
 * checks or replaces fields from JWT claims, then the team from the mTLS peer.
 * Pure: the same evidence and policy give the same result. In dry-run the
 * context stays as the headers made it; only the violation is reported.
 */
export function bindIdentity(
  extracted: { context: GovernanceContext; problems: readonly ContextProblem[] },
  evidence: IdentityEvidence,
  identity: CompiledIdentity,
  teams: ReadonlyMap<string, CompiledTeam>,
): BoundContext {
  const context: Record<string, string | undefined> = { ...extracted.context };
  let problems = extracted.problems;
  const bindings: BindingResult[] = [];
  const payload = readPayload(evidence, identity);
  const source = payload.claims ? payload.source : 'none';
  const claims = payload.claims;
  let violation: IdentityViolation | undefined;
  let decidedBy: string | undefined;
  const refuse = (reasonCode: IdentityViolation['reasonCode'], message: string, by: string) => {
    if (violation) return;
    violation = { reasonCode, message, httpStatus: reasonCode === 'x_identity_mismatch' ? 403 : 401, mode: identity.mode };
    decidedBy = by;
  };
  const dropProblem = (field: IdentityField) => {
    if (problems.some((problem) => problem.field === field)) problems = problems.filter((problem) => problem.field !== field);
  };

  if (payload.error) refuse('x_identity_invalid', payload.error, 'token');
  if (claims) {
    const issuer = typeof claims.iss === 'string' ? claims.iss : undefined;
    if (identity.issuers && !(issuer !== undefined && identity.issuers.has(issuer))) {
      refuse('x_identity_invalid', `token issuer ${issuer === undefined ? '(none)' : JSON.stringify(issuer)} is not accepted`, 'issuer');
    }
    if (identity.audiences && !audienceMatches(claims.aud, identity.audiences)) {
      refuse('x_identity_invalid', 'token audience is not one this service accepts', 'audience');
    }
  } else if (isRequired(identity.required, evidence.path)) {
    refuse('x_identity_required', `a verified identity (bearer token) is required${payload.ignored ?? ''}`, 'required');
  }

  // Claims
  for (const binding of identity.claims) {
    const header = HEADER_OF_FIELD[binding.field];
    const sent = context[binding.field];
    const result = (outcome: BindingResult['result']) => bindings.push({ field: binding.field, from: `claim ${binding.claim}`, mode: binding.mode, result: outcome });
    if (!claims) {
      if (binding.mode === 'fill') continue;
      result('refused');
      refuse('x_identity_required', `${header} is bound to the token claim ${binding.claim}: a verified identity (bearer token) is required${payload.ignored ?? ''}`, `claim ${binding.claim}`);
      continue;
    }
    const candidates = candidatesOf(binding, claims, teams);
    if ('problem' in candidates) {
      result('refused');
      refuse('x_identity_invalid', `token claim ${binding.claim} ${candidates.problem}`, `claim ${binding.claim}`);
      continue;
    }
    const values = candidates.values;
    if (values.length === 0) {
      if (sent !== undefined && binding.mode !== 'fill') {
        result('refused');
        refuse('x_identity_mismatch', `${header} ${sent} is not backed by the token: it has no claim ${binding.claim}`, `claim ${binding.claim}`);
      } else result('no-claim');
      continue;
    }
    const single = values.length === 1 ? values[0] : undefined;
    if (binding.mode === 'claim-wins' && single !== undefined) {
      result(sent === undefined ? 'filled' : sent === single ? 'matched' : 'replaced');
      context[binding.field] = single;
      dropProblem(binding.field);
      continue;
    }
    if (sent === undefined) {
      const invalidHeader = problems.some((problem) => problem.field === binding.field);
      if (single !== undefined && !invalidHeader) {
        context[binding.field] = single;
        result('filled');
      } else result(invalidHeader ? 'kept-header' : 'ambiguous');
      continue;
    }
    if (binding.mode === 'fill') result('kept-header');
    else if (values.includes(sent)) result('matched');
    else {
      result('refused');
      refuse('x_identity_mismatch', `${header} ${sent} does not match the token claim ${binding.claim}`, `claim ${binding.claim}`);
    }
  }

  // Peer
  if (identity.peerTeam) {
    const mode = identity.peerTeam;
    const principal = evidence.principal || undefined;
    const result = (outcome: BindingResult['result']) => bindings.push({ field: 'team', from: 'peer', mode, result: outcome });
    const sent = context.team;
    const claimBound = identity.claims.some((binding) => binding.field === 'team' && binding.mode !== 'fill') && claims !== undefined;
    if (!principal) {
      if (mode !== 'fill') {
        result('refused');
        refuse('x_identity_mismatch', 'the team is bound to the mTLS caller identity, and the request has none', 'peer');
      }
    } else {
      const peerTeams = teamsOfPrincipal(principal, teams);
      const single = peerTeams.length === 1 ? peerTeams[0] : undefined;
      if (sent === undefined) {
        if (single !== undefined) {
          context.team = single;
          dropProblem('team');
          result('filled');
        } else if (mode !== 'fill' && peerTeams.length === 0) {
          result('refused');
          refuse('x_identity_mismatch', `caller ${principal} is not a workload of any team`, 'peer');
        } else result('ambiguous');
      } else if (peerTeams.includes(sent)) {
        result('matched');
      } else if (mode === 'fill') {
        result('kept-header');
      } else if (mode === 'claim-wins' && single !== undefined && !claimBound) {
        context.team = single;
        dropProblem('team');
        result('replaced');
      } else {
        result('refused');
        refuse('x_identity_mismatch', `caller ${principal} is not a workload of team ${sent}`, 'peer');
      }
    }
  }

  const outcome: IdentityOutcome = {
    source,
    issuer: typeof claims?.iss === 'string' ? claims.iss : undefined,
    subject: typeof claims?.sub === 'string' ? claims.sub : undefined,
    bindings,
    decidedBy,
  };
  if (identity.mode === 'dry-run') return { context: extracted.context, problems: extracted.problems, violation, outcome };
  return { context: context as GovernanceContext, problems, violation, outcome };
}

/** The WWW-Authenticate challenge (RFC 6750) of a 401 with this reason. */
export function bearerChallenge(reasonCode: string | undefined): string {
  return reasonCode === 'x_identity_invalid' ? 'Bearer realm="genops-mesh", error="invalid_token"' : 'Bearer realm="genops-mesh"';
}

type Claims = Readonly<Record<string, unknown>>;

/**
 * The verified payload. Where the adapter carries jwt_authn metadata and the policy names a key,
 * only from there (a channel a client cannot write; its absence means no token, never "look at a
 * header"); otherwise from the payload header, and that only where the adapter vouches that its
 * proxy strips client copies. `ignored` explains a header that was sent but not read.
 */
function readPayload(evidence: IdentityEvidence, identity: CompiledIdentity): { claims?: Claims; source: IdentityOutcome['source']; error?: string; ignored?: string } {
  if (identity.metadataKey !== undefined && !evidence.withoutJwtMetadata) {
    const fromMetadata = evidence.jwtMetadata?.[identity.metadataKey];
    return isObject(fromMetadata) ? { claims: fromMetadata, source: 'jwt_metadata' } : { source: 'none' };
  }
  if (!identity.payloadHeader) return { source: 'none' };
  const header = evidence.headers(identity.payloadHeader);
  if (header === undefined || header.trim() === '') return { source: 'none' };
  if (!evidence.payloadHeaderTrusted) {
    return { source: 'none', ignored: ` (${identity.payloadHeader} is not read here: GENOPS_TRUST_PAYLOAD_HEADER does not name this adapter as one whose proxy removes client-sent copies)` };
  }
  try {
    const decoded: unknown = JSON.parse(Buffer.from(header.trim(), 'base64url').toString('utf8'));
    if (isObject(decoded)) return { claims: decoded, source: 'payload_header' };
  } catch {
    // reported below
  }
  return { source: 'payload_header', error: `${identity.payloadHeader} is not a base64url-encoded JSON object` };
}

function isObject(value: unknown): value is Claims {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRequired(required: boolean | readonly string[], path: string | undefined): boolean {
  if (typeof required === 'boolean') return required;
  // A request whose path is unknown gets the stricter answer.
  return path === undefined || required.some((prefix) => path.startsWith(prefix));
}

function audienceMatches(aud: unknown, accepted: ReadonlySet<string>): boolean {
  if (typeof aud === 'string') return accepted.has(aud);
  return Array.isArray(aud) && aud.some((entry) => typeof entry === 'string' && accepted.has(entry));
}

function readClaim(claims: Claims, binding: CompiledClaimBinding): unknown {
  for (const path of binding.paths) {
    let value: unknown = claims;
    for (const segment of path) {
      value = isObject(value) && Object.hasOwn(value, segment) ? value[segment] : undefined;
      if (value === undefined) break;
    }
    if (value !== undefined) return value;
  }
  return undefined;
}

/**
 * The values a claim offers for its field, normalized like the header. A
 * scalar claim that breaks the field's rule is a problem; in a list (groups)
 * entries that do not fit are other groups and are skipped, and for the team
 * only groups that are listed teams count when any is.
 */
function candidatesOf(binding: CompiledClaimBinding, claims: Claims, teams: ReadonlyMap<string, CompiledTeam>): { values: string[] } | { problem: string } {
  const raw = readClaim(claims, binding);
  if (raw === undefined || raw === null) return { values: [] };
  const list = Array.isArray(raw);
  const entries = list ? raw : [raw];
  const values: string[] = [];
  for (const entry of entries) {
    let text = typeof entry === 'string' ? entry : typeof entry === 'number' && Number.isSafeInteger(entry) ? String(entry) : undefined;
    if (text === undefined) {
      if (list) continue;
      return { problem: 'is neither a string nor an integer' };
    }
    if (binding.prefix !== undefined) {
      if (!text.startsWith(binding.prefix)) continue;
      text = text.slice(binding.prefix.length);
    }
    const normalized = normalizeContextValue(binding.field, text);
    if ('problem' in normalized) {
      if (list) continue;
      return { problem: `value ${normalized.problem} (it gives ${HEADER_OF_FIELD[binding.field]})` };
    }
    if (!values.includes(normalized.value)) values.push(normalized.value);
  }
  if (binding.field === 'team' && list && values.length > 1) {
    const listed = values.filter((value) => teams.has(value));
    if (listed.length > 0) return { values: listed };
  }
  return { values };
}

function teamsOfPrincipal(principal: string, teams: ReadonlyMap<string, CompiledTeam>): string[] {
  const found: string[] = [];
  for (const team of teams.values()) if (team.principals && team.principals.matches(principal)) found.push(team.name);
  return found;
}
