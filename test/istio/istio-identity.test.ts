/**
 * deploy/istio/identity under the real istiod: the shipped RequestAuthentications (with this
 * test's issuer keys inline) and EnvoyFilters beside the governance variant, the policy given
 * the identity block documented in deploy/istio/identity/kustomization.yaml, tokens signed here.
 *
 * ext_proc (inserted before the router) runs after Istio's jwt_authn and binds claims. The CUSTOM
 * ext_authz filter runs before it: istiod's listener builder adds CUSTOM authz, then authn — so
 * genops-mesh never sees a verified payload there. Both are asserted, so the README's account of
 * the limitation fails loudly the day Istio changes the order. (With the CUSTOM governance the
 * identity resources reach only the gateway: their sidecar selectors name ext_proc workloads.)
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, type HttpResponse } from '../support/index.js';
import { context, UUID } from '../support/request-context.js';
import { startIstioMesh, type IstioGovernance, type IstioMesh } from './support/istio-mesh.js';
import { httpFilters } from './support/start-istio-proxy.js';

const ISSUER = 'https://auth.example.com';
const AUDIENCE = 'genops-ai-api';
const CHAT = '/v1/chat/completions';
const chatBody = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Summarize ticket #4711 in one sentence.' }] });

/** The `spec.identity` block the identity kustomization documents for its resources. */
function documentedPolicyIdentity(): Record<string, unknown> {
  const lines = readFileSync(join(REPO_ROOT, 'deploy/istio/identity/kustomization.yaml'), 'utf8').split('\n');
  const start = lines.findIndex((line) => line.trim() === '#   spec:');
  const block: string[] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith('#   ')) break;
    block.push(line.slice(4));
  }
  const identity = (parse(block.join('\n')) as { spec: { identity: Record<string, unknown> } }).spec.identity;
  expect(identity).toMatchObject({ jwt: { metadataKey: 'payload' } });
  return identity;
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function expectJsonDenial(response: HttpResponse, status: number, reasonCode: string): void {
  expect(response.status, response.body).toBe(status);
  expect(response.json()).toMatchObject({ reason_code: reasonCode, decision_id: expect.stringMatching(UUID) });
}

async function gatewayFilterNames(mesh: IstioMesh): Promise<string[]> {
  const listeners = (await mesh.gateway.listeners()).filter((listener) => listener.address?.socket_address?.port_value === mesh.gatewayPort);
  return listeners.flatMap((listener) => httpFilters(listener).map((filter) => filter.name as string));
}

describe.each<IstioGovernance>(['ext-proc', 'ext-authz'])('deploy/istio/identity with genops-mesh as %s, under a real istiod', (variant) => {
  let mesh: IstioMesh;
  let signingKey: CryptoKey;
  const claims = { groups: ['ml-platform', 'employees'], customer_id: 'cust-identity-1', project: 'support-bot' };
  const token = (payload: Record<string, unknown> = claims) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'istio-test' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('alice').setIssuedAt().setExpirationTime('10m').sign(signingKey);
  const headers = (team: string, extra: Record<string, string> = {}) => ({
    'content-type': 'application/json',
    ...context({ 'x-genops-team': team, 'x-genops-customer-id': claims.customer_id, 'x-genops-customer-tier': 'standard' }),
    ...extra,
  });

  beforeAll(async () => {
    const keys = await generateKeyPair('RS256');
    signingKey = keys.privateKey;
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'istio-test', alg: 'RS256', use: 'sig' }] });
    mesh = await startIstioMesh(variant, { jwks, policyIdentity: documentedPolicyIdentity() });
  }, 120_000);
  afterAll(async () => {
    await mesh?.stop();
  });

  if (variant === 'ext-proc') {
    it("runs genops-mesh's ext_proc after Istio's jwt_authn, with the client's x-jwt-payload removed before it", async () => {
      const names = await gatewayFilterNames(mesh);
      expect(names).toContain('envoy.filters.http.jwt_authn');
      expect(names.indexOf('genops.strip_jwt_payload')).toBe(names.indexOf('envoy.filters.http.jwt_authn') - 1);
      expect(names.indexOf('envoy.filters.http.jwt_authn')).toBeLessThan(names.indexOf('envoy.filters.http.ext_proc'));
    });

    it('lets a token for a team through with that team in the header', async () => {
      const testId = randomUUID();
      const response = await mesh.throughGateway(CHAT, headers('ml-platform', { authorization: `Bearer ${await token()}`, 'x-test-id': testId }), chatBody);
      expect(response.status, response.body).toBe(200);
      expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(1);
      const [decision] = mesh.decisionsFor(claims.customer_id).filter((line) => JSON.stringify(line).includes(response.header('x-genops-decision-id')!));
      // The unforgeable channel: jwt_authn's metadata, forwarded by the ext_proc filter.
      expect(decision).toMatchObject({ result: 'ALLOWED', identity: { source: 'jwt_metadata', issuer: ISSUER, subject: 'alice' } });
    });

    it('refuses the token of one team with another team in the header (403 x_identity_mismatch)', async () => {
      const testId = randomUUID();
      const response = await mesh.throughGateway(CHAT, headers('product-team', { authorization: `Bearer ${await token()}`, 'x-test-id': testId }), chatBody);
      expectJsonDenial(response, 403, 'x_identity_mismatch');
      expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
    });

    it('refuses a request without a token where the policy requires one (401)', async () => {
      const response = await mesh.throughGateway(CHAT, headers('ml-platform'), chatBody);
      expectJsonDenial(response, 401, 'x_identity_required');
      expect(response.header('www-authenticate')).toContain('Bearer');
    });

    it('ignores a forged x-jwt-payload sent without a token', async () => {
      const testId = randomUUID();
      const forged = base64url({ ...claims, iss: ISSUER, aud: AUDIENCE, sub: 'mallory', groups: ['product-team'] });
      const response = await mesh.throughGateway(CHAT, headers('product-team', { 'x-jwt-payload': forged, 'x-test-id': testId }), chatBody);
      expectJsonDenial(response, 401, 'x_identity_required');
      expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
    });

    it("binds claims at the sidecar for east-west callers too (the workload's own jwt_authn, then ext_proc)", async () => {
      const testId = randomUUID();
      const bearer = { authorization: `Bearer ${await token()}`, 'x-test-id': testId };
      const allowed = await mesh.eastWest(CHAT, headers('ml-platform', bearer), chatBody);
      expect(allowed.status, allowed.body).toBe(200);
      expectJsonDenial(await mesh.eastWest(CHAT, headers('product-team', bearer), chatBody), 403, 'x_identity_mismatch');
      expectJsonDenial(await mesh.eastWest(CHAT, headers('ml-platform', { 'x-jwt-payload': base64url(claims), 'x-test-id': testId }), chatBody), 401, 'x_identity_required');
      expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(1);
    });

    it("leaves a bad token to Istio's jwt_authn (401 from the proxy, genops-mesh never asked)", async () => {
      const { privateKey: strangerKey } = await generateKeyPair('RS256');
      const forgedToken = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'istio-test' }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('10m').sign(strangerKey);
      const response = await mesh.throughGateway(CHAT, headers('ml-platform', { authorization: `Bearer ${forgedToken}` }), chatBody);
      expect(response.status).toBe(401);
      expect(response.body).toBe('Jwt verification fails');
      expect(response.header('x-genops-decision-id')).toBeUndefined();
    });
  } else {
    it('shows the limitation: istiod puts the CUSTOM ext_authz before jwt_authn, so even a valid token is not seen (401)', async () => {
      const names = await gatewayFilterNames(mesh);
      expect(names).toContain('envoy.filters.http.jwt_authn');
      expect(names.indexOf('envoy.filters.http.ext_authz')).toBeLessThan(names.indexOf('envoy.filters.http.jwt_authn'));
      const testId = randomUUID();
      const response = await mesh.throughGateway(CHAT, headers('ml-platform', { authorization: `Bearer ${await token()}`, 'x-test-id': testId }), chatBody);
      expectJsonDenial(response, 401, 'x_identity_required');
      expect([...mesh.opus.requestsWith('x-test-id', testId), ...mesh.haiku.requestsWith('x-test-id', testId)]).toHaveLength(0);
    });
  }
});
