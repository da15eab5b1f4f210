import { GenopsError } from '../errors/genops-error.js';

/** The adapters a proxy calls; each may or may not strip client-sent JWT payload headers. */
export const PAYLOAD_HEADER_ADAPTERS = ['ext_authz', 'ext_proc', 'forward_auth'] as const;
export type PayloadHeaderAdapter = (typeof PAYLOAD_HEADER_ADAPTERS)[number];

/** What the operator vouches for: which proxies strip forged headers, who may read /budgets, how many replicas run. */
export interface TrustSettings {
  /**
   * Adapters whose proxy removes client-sent copies of `spec.identity.jwt.payloadHeader` before
   * verifying the token. Only there is that header read. Empty by default: the service cannot see
   * the proxy's config (Istio's CUSTOM ext_authz runs before any strip filter).
   */
  readonly trustPayloadHeader: ReadonlySet<PayloadHeaderAdapter>;
  /** Bearer token for /budgets on the admin port; undefined = /budgets is off (404). */
  readonly adminToken: string | undefined;
  /** The operator says this is the only replica: in-memory budgets need no warning. */
  readonly singleReplica: boolean;
}

export type TrustSettingReader = (flag: 'trust-payload-header' | 'admin-token' | 'single-replica') => { value: string | undefined; name: string };

/** The shortest admin token accepted: a guessable token is no protection for customer ids and spend. */
export const ADMIN_TOKEN_MIN_LENGTH = 16;

export function loadTrustSettings(read: TrustSettingReader): TrustSettings {
  const trust = read('trust-payload-header');
  const adapters = new Set<PayloadHeaderAdapter>();
  for (const entry of (trust.value ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    if (!(PAYLOAD_HEADER_ADAPTERS as readonly string[]).includes(entry)) {
      throw new GenopsError('invalid_settings', `${trust.name}=${trust.value}: ${JSON.stringify(entry)} is not one of ${PAYLOAD_HEADER_ADAPTERS.join(', ')}`);
    }
    adapters.add(entry as PayloadHeaderAdapter);
  }
  const token = read('admin-token');
  if (token.value !== undefined && (token.value.length < ADMIN_TOKEN_MIN_LENGTH || !/^[\x21-\x7e]+$/.test(token.value))) {
    // The value itself is never echoed: it is a secret.
    throw new GenopsError('invalid_settings', `${token.name}: must be at least ${ADMIN_TOKEN_MIN_LENGTH} printable characters without spaces`);
  }
  const single = read('single-replica');
  let singleReplica = false;
  if (single.value !== undefined) {
    const value = single.value.trim().toLowerCase();
    if (value !== 'true' && value !== 'false') throw new GenopsError('invalid_settings', `${single.name}=${single.value}: must be true or false`);
    singleReplica = value === 'true';
  }
  return { trustPayloadHeader: adapters, adminToken: token.value, singleReplica };
}

/**
 * A policy whose claims can only come from a payload header no adapter may read refuses every bound
 * request: say so once at start rather than only in each 401.
 */
export function untrustedPayloadHeaderWarning(identity: { metadataKey: string | undefined; payloadHeader: string | undefined } | undefined, trust: TrustSettings): string | undefined {
  if (!identity?.payloadHeader || trust.trustPayloadHeader.size > 0) return undefined;
  return `spec.identity.jwt.payloadHeader ${identity.payloadHeader} is read on no adapter: GENOPS_TRUST_PAYLOAD_HEADER is unset (name ext_authz, ext_proc or forward_auth once its proxy removes client-sent copies)${identity.metadataKey ? '; claims come from the jwt_authn metadata only' : ''}`;
}
