/**
 * The filter chain Consul programs into a sidecar for genops-mesh, reproduced as
 * deploy/envoy/consul-ext-authz.yaml, booted on the real Envoy with mTLS and
 * Consul-shaped SPIFFE identities. (Istio's runs for real: test/istio.)
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  httpRequest,
  REPO_ROOT,
  startEnvoy,
  startService,
  startUpstream,
  type HttpResponse,
  type RunningEnvoy,
  type RunningService,
  type TestPki,
  type Upstream,
} from '../support/index.js';
import { context, UUID } from '../support/request-context.js';

const TEST_ID = 'x-test-id';
const CONSUL_CLIENT = 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/ai-client';
const CONSUL_BATCH = 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/batch';


function expectJsonDenial(response: HttpResponse, status: number, reasonCode: string): void {
  expect(response.status, response.body).toBe(status);
  expect(response.header('content-type')).toMatch(/^application\/json/);
  expect(response.json()).toMatchObject({ reason_code: reasonCode, decision_id: expect.stringMatching(UUID) });
  expect(response.header('x-genops-decision-id')).toBe(response.json<{ decision_id: string }>().decision_id);
}

describe('Consul-shaped Envoy config in front of genops-mesh', () => {
  let pki: TestPki | undefined;
  let policyPath: string | undefined;
  let service: RunningService | undefined;
  let upstream: Upstream | undefined;
  let consul: RunningEnvoy | undefined;

  beforeAll(async () => {
    pki = createTestPki([CONSUL_CLIENT, CONSUL_BATCH]);
    // ml-platform may only be acted for by the Consul ai-client.
    const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: { teams: Record<string, Record<string, unknown>> } };
    policy.spec.teams['ml-platform'] = { ...policy.spec.teams['ml-platform'], principals: ['spiffe://*.consul/ns/default/dc/*/svc/ai-client'] };
    policyPath = join(tmpdir(), `genops-mesh-policy-${randomUUID()}.yaml`);
    writeFileSync(policyPath, stringify(policy));
    service = await startService({ policyPath });
    upstream = await startUpstream();
    const downstreamTls = { certificateChain: pki.serverCert, privateKey: pki.serverKey, trustedCa: pki.ca };
    const vars = { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_PORT: upstream.port };
    consul = await startEnvoy({ config: 'deploy/envoy/consul-ext-authz.yaml', vars, downstreamTls });
  });
  afterAll(async () => {
    await consul?.stop();
    await service?.stop();
    await upstream?.stop();
    pki?.remove();
    if (policyPath) rmSync(policyPath, { force: true });
  });

  const sendAs = (principal: string, url: string, testId: string, headers: Record<string, string>) => {
    const client = pki!.clients.get(principal)!;
    return httpRequest(url, { headers: { ...headers, [TEST_ID]: testId }, tls: { ca: pki!.ca, cert: client.cert, key: client.key } });
  };
  const received = (testId: string) => upstream!.requestsWith(TEST_ID, testId);

  describe('Consul sidecar with the builtin/ext-authz extension', () => {
    it('governs a request from an intended service with its Consul identity', async () => {
      const testId = randomUUID();
      const response = await sendAs(CONSUL_CLIENT, `${consul!.url}/v1/chat/completions`, testId, context({ 'x-genops-customer-tier': 'basic' }));
      expect(response.status, response.body).toBe(200);
      expect(received(testId)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-sonnet', 'x-genops-decision-id': expect.stringMatching(UUID) });
    });

    it('refuses with the JSON denial what the policy refuses', async () => {
      const testId = randomUUID();
      expectJsonDenial(await sendAs(CONSUL_CLIENT, `${consul!.url}/v1/messages`, testId, context({ 'x-genops-team': 'marketing' })), 403, 'x_team_not_allowed');
      expectJsonDenial(await sendAs(CONSUL_CLIENT, `${consul!.url}/v1/messages`, testId, context({ 'x-genops-model': 'Not A Model' })), 400, 'x_invalid_context');
      expect(received(testId)).toHaveLength(0);
    });

    it('leaves a service the intentions do not allow at the connection level, before any decision', async () => {
      const testId = randomUUID();
      await expect(sendAs(CONSUL_BATCH, `${consul!.url}/v1/messages`, testId, context())).rejects.toThrow();
      expect(received(testId)).toHaveLength(0);
    });
  });
});
