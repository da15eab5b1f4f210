/**
 * Hostile clients against identity, through the real Envoy: a forged JWT payload header must never
 * stand in for a verified token. The base configs (deploy/envoy/ext-authz.yaml, ext-proc.yaml) do
 * not strip x-jwt-payload, as Istio's CUSTOM ext_authz does not (it runs before any strip filter):
 * there a policy that names a metadata key never falls back to the header, whatever the operator
 * trusts, and a header-only policy reads it only where GENOPS_TRUST_PAYLOAD_HEADER vouches for the
 * proxy. Through deploy/envoy/ext-authz-jwt.yaml, which strips client copies, the trusted header
 * carries a real token's claims and a forged one is gone before the service sees it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  freePort,
  httpRequest,
  startGovernanceStack,
  startUpstream,
  type EchoBody,
  type EnvoyMode,
  type GovernanceStack,
  type TestPki,
  type Upstream,
} from '../support/index.js';
import { writeDefaultPolicy } from '../support/default-policy.js';

const ISSUER = 'https://auth.genops.test';
const AUDIENCE = 'genops-mesh';
const ENVOY_IDENTITY = 'spiffe://cluster.local/ns/genops/sa/envoy-gateway';
const CLAIMS = { iss: ISSUER, aud: AUDIENCE, sub: 'mallory', groups: ['ml-platform'], customer_id: 'acme' };
const forgedPayload = () => Buffer.from(JSON.stringify(CLAIMS)).toString('base64url');
const context = { 'x-genops-team': 'ml-platform', 'x-genops-project': 'chatbot', 'content-type': 'application/json' };
const chat = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });

function policyWith(jwt: Record<string, unknown>, dir: string, name: string): string {
  return writeDefaultPolicy(dir, name, (spec) => {
    spec.rateLimits = [];
    spec.identity = {
      jwt,
      required: { paths: ['/v1/'] },
      claims: { team: { claim: 'groups', mode: 'must-match' }, customerId: { claim: 'customer_id', mode: 'claim-wins' } },
    };
  });
}

let dir: string;
let upstream: Upstream;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'genops-hostile-identity-'));
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.each<EnvoyMode>(['ext-authz', 'ext-proc'])('a forged x-jwt-payload through the %s config that does not strip it', (mode) => {
  const stacks: GovernanceStack[] = [];
  afterAll(async () => {
    await Promise.all(stacks.map((stack) => stack.stop()));
  });
  const start = async (jwt: Record<string, unknown>, env: Record<string, string>) => {
    const stack = await startGovernanceStack({ mode, upstreamPort: upstream.port, policyPath: policyWith(jwt, dir, `${mode}-${stacks.length}.yaml`), serviceEnv: env });
    stacks.push(stack);
    return stack;
  };
  const forge = (stack: GovernanceStack) =>
    httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context, 'x-jwt-payload': forgedPayload() }, body: chat });

  it('with the metadata key named: never read, even where the operator trusts the header (no metadata is no token)', async () => {
    const stack = await start({ metadataKey: 'jwt_payload', payloadHeader: 'x-jwt-payload' }, { GENOPS_TRUST_PAYLOAD_HEADER: 'ext_authz,ext_proc' });
    const response = await forge(stack);
    expect(response.status, response.body).toBe(401);
    expect(response.json()).toMatchObject({ reason_code: 'x_identity_required' });
    expect(response.header('www-authenticate')).toBe('Bearer realm="genops-mesh"');
  });

  it('with only the header named: refused unless GENOPS_TRUST_PAYLOAD_HEADER names the adapter, and the refusal says so', async () => {
    const stack = await start({ payloadHeader: 'x-jwt-payload' }, {});
    const response = await forge(stack);
    expect(response.status, response.body).toBe(401);
    expect(response.json<{ message: string }>().message).toContain('x-jwt-payload is not read here: GENOPS_TRUST_PAYLOAD_HEADER does not name this adapter');
    // ...and the operator heard it once at start.
    const warned = () => stack.service.logs().filter((line) => line.event === 'payload_header_untrusted');
    for (let attempt = 0; attempt < 100 && warned().length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(warned()).toHaveLength(1);
    expect(warned()[0]!.msg).toContain('x-jwt-payload is read on no adapter: GENOPS_TRUST_PAYLOAD_HEADER is unset');
  });
});

describe('the payload header where the proxy strips client copies: deploy/envoy/ext-authz-jwt.yaml with GENOPS_TRUST_PAYLOAD_HEADER=ext_authz', () => {
  let pki: TestPki;
  let stack: GovernanceStack;
  let signingKey: CryptoKey;
  let forwardAuthPort: number;
  beforeAll(async () => {
    forwardAuthPort = await freePort();
    pki = createTestPki([ENVOY_IDENTITY]);
    const keys = await generateKeyPair('ES256');
    signingKey = keys.privateKey;
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k', alg: 'ES256', use: 'sig' }] }));
    const client = pki.clients.get(ENVOY_IDENTITY)!;
    stack = await startGovernanceStack({
      mode: 'ext-authz',
      config: 'deploy/envoy/ext-authz-jwt.yaml',
      upstreamPort: upstream.port,
      policyPath: policyWith({ payloadHeader: 'x-jwt-payload', issuers: [ISSUER] }, dir, 'stripping.yaml'),
      serviceEnv: {
        LOG_LEVEL: 'debug',
        GENOPS_TRUST_PAYLOAD_HEADER: 'ext_authz',
        GENOPS_FORWARD_AUTH_PORT: String(forwardAuthPort),
        GENOPS_TLS_CERT: pki.serverCert,
        GENOPS_TLS_KEY: pki.serverKey,
        GENOPS_TLS_CLIENT_CA: pki.ca,
      },
      envoyVars: { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_JWKS_PATH: jwks, GENOPS_TLS_CA: pki.ca, GENOPS_TLS_CERT: client.cert, GENOPS_TLS_KEY: client.key, GENOPS_TLS_SERVER_NAME: 'localhost' },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    pki?.remove();
  });

  it('reads the header jwt_authn wrote for a verified token', async () => {
    const token = await new SignJWT({ groups: ['ml-platform'], customer_id: 'acme' }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('alice').setIssuedAt().setExpirationTime('10m').sign(signingKey);
    const response = await httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context, authorization: `Bearer ${token}` }, body: chat });
    expect(response.status, response.body).toBe(200);
    expect(response.json<EchoBody>().headers['x-genops-customer-id']).toBe('acme');
    const decisionId = response.header('x-genops-decision-id');
    const logged = async () => {
      for (let attempt = 0; attempt < 100; attempt++) {
        const line = stack.service.logs().find((entry) => entry.event === 'decision' && entry.decision_id === decisionId);
        if (line) return line;
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      return undefined;
    };
    expect(await logged()).toMatchObject({ identity: { source: 'payload_header', subject: 'alice' } });
  });

  it('never sees a forged one: the config removes it before jwt_authn, so no token is 401', async () => {
    const response = await httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context, 'x-jwt-payload': forgedPayload() }, body: chat });
    expect(response.status, response.body).toBe(401);
    expect(response.json()).toMatchObject({ reason_code: 'x_identity_required' });
  });

  it('forward auth, which GENOPS_TRUST_PAYLOAD_HEADER does not name here, ignores a forged header: 401 naming the setting', async () => {
    const client = pki.clients.get(ENVOY_IDENTITY)!;
    const response = await httpRequest(`https://127.0.0.1:${forwardAuthPort}/forward-auth`, {
      headers: { ...context, 'x-jwt-payload': forgedPayload(), 'x-original-uri': '/v1/chat/completions', 'x-forwarded-uri': '/v1/chat/completions' },
      tls: { ca: pki.ca, cert: client.cert, key: client.key },
    });
    expect(response.status, response.body).toBe(401);
    expect(response.json<{ message: string }>().message).toContain('x-jwt-payload is not read here');
  });
});
