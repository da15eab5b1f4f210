/**
 * The filter chains Istio and Consul program into a sidecar for genops-mesh,
 * reproduced as deploy/envoy/istio-sidecar.yaml and consul-ext-authz.yaml,
 * booted on the real Envoy with mTLS and mesh-shaped SPIFFE identities.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  freePort,
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
const ISTIO_GATEWAY = 'spiffe://cluster.local/ns/genops/sa/api-gateway';
const ISTIO_BATCH = 'spiffe://cluster.local/ns/batch/sa/jobs';
const ISTIO_INGRESS = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';
const CONSUL_CLIENT = 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/ai-client';
const CONSUL_BATCH = 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/batch';


function expectJsonDenial(response: HttpResponse, status: number, reasonCode: string): void {
  expect(response.status, response.body).toBe(status);
  expect(response.header('content-type')).toMatch(/^application\/json/);
  expect(response.json()).toMatchObject({ reason_code: reasonCode, decision_id: expect.stringMatching(UUID) });
  expect(response.header('x-genops-decision-id')).toBe(response.json<{ decision_id: string }>().decision_id);
}

describe('mesh-shaped Envoy configs in front of genops-mesh', () => {
  let pki: TestPki | undefined;
  let policyPath: string | undefined;
  let service: RunningService | undefined;
  let upstream: Upstream | undefined;
  let istio: RunningEnvoy | undefined;
  let consul: RunningEnvoy | undefined;
  let istioExtProcUrl = '';

  beforeAll(async () => {
    pki = createTestPki([ISTIO_GATEWAY, ISTIO_BATCH, ISTIO_INGRESS, CONSUL_CLIENT, CONSUL_BATCH]);
    // ml-platform may only be acted for by the Istio gateway or the Consul ai-client (Istio writes ids without spiffe://).
    const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: { teams: Record<string, Record<string, unknown>> } };
    policy.spec.teams['ml-platform'] = { ...policy.spec.teams['ml-platform'], principals: ['cluster.local/ns/genops/sa/api-gateway', 'spiffe://*.consul/ns/default/dc/*/svc/ai-client'] };
    policyPath = join(tmpdir(), `genops-mesh-policy-${randomUUID()}.yaml`);
    writeFileSync(policyPath, stringify(policy));
    service = await startService({ policyPath });
    upstream = await startUpstream();
    const downstreamTls = { certificateChain: pki.serverCert, privateKey: pki.serverKey, trustedCa: pki.ca };
    const vars = { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_PORT: upstream.port };
    const extProcPort = await freePort();
    [istio, consul] = await Promise.all([
      startEnvoy({ config: 'deploy/envoy/istio-sidecar.yaml', vars: { ...vars, EXT_PROC_LISTENER_PORT: extProcPort }, downstreamTls }),
      startEnvoy({ config: 'deploy/envoy/consul-ext-authz.yaml', vars, downstreamTls }),
    ]);
    istioExtProcUrl = `https://127.0.0.1:${extProcPort}`;
  });
  afterAll(async () => {
    await Promise.all([istio?.stop(), consul?.stop()]);
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

  describe('Istio sidecar, CUSTOM AuthorizationPolicy (RBAC shadow rules + ext_authz)', () => {
    it('governs a /v1/ request from the gateway identity: route, decision id, normalized context', async () => {
      const testId = randomUUID();
      const response = await sendAs(ISTIO_GATEWAY, `${istio!.url}/v1/messages`, testId, context({ 'x-genops-customer-tier': 'PREMIUM' }));
      expect(response.status, response.body).toBe(200);
      expect(received(testId)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-genops-customer-tier': 'premium', 'x-genops-decision-id': expect.stringMatching(UUID) });
      expect(response.header('x-genops-decision-id')).toBe(received(testId)[0]?.headers['x-genops-decision-id']);
    });

    it('passes the Istio peer identity as the principal: another workload is refused for the team', async () => {
      const testId = randomUUID();
      const response = await sendAs(ISTIO_BATCH, `${istio!.url}/v1/messages`, testId, context());
      expectJsonDenial(response, 403, 'x_principal_not_allowed');
      expect(response.json<{ message: string }>().message).toContain(ISTIO_BATCH);
      expect(received(testId)).toHaveLength(0);
    });

    it('refuses a /v1/ request without governance headers with 403 JSON', async () => {
      const testId = randomUUID();
      expectJsonDenial(await sendAs(ISTIO_GATEWAY, `${istio!.url}/v1/messages`, testId, {}), 403, 'x_missing_context');
      expect(received(testId)).toHaveLength(0);
    });

    it('never asks genops-mesh about paths outside the policy rules (filter_enabled_metadata)', async () => {
      const testId = randomUUID();
      const response = await sendAs(ISTIO_BATCH, `${istio!.url}/healthz`, testId, {});
      expect(response.status, response.body).toBe(200);
      expect(response.header('x-genops-decision-id')).toBeUndefined();
      expect(received(testId)[0]?.headers['x-genops-route']).toBeUndefined();
    });

    it('does not decide twice for requests the ingress gateway already governed (notPrincipals)', async () => {
      const testId = randomUUID();
      const response = await sendAs(ISTIO_INGRESS, `${istio!.url}/v1/messages`, testId, { 'x-genops-route': 'claude-opus' });
      expect(response.status, response.body).toBe(200);
      expect(response.header('x-genops-decision-id')).toBeUndefined();
      expect(received(testId)[0]?.headers['x-genops-route']).toBe('claude-opus');
    });
  });

  describe('Istio sidecar, EnvoyFilter ext_proc before the router', () => {
    it('governs every request: route upstream, decision id on the response', async () => {
      const testId = randomUUID();
      const response = await sendAs(ISTIO_GATEWAY, `${istioExtProcUrl}/v1/messages`, testId, context({ 'x-genops-customer-tier': 'standard' }));
      expect(response.status, response.body).toBe(200);
      expect(received(testId)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-haiku' });
      expect(response.header('x-genops-decision-id')).toBe(received(testId)[0]?.headers['x-genops-decision-id']);
    });

    it('sees the peer identity through request_attributes', async () => {
      const testId = randomUUID();
      expectJsonDenial(await sendAs(ISTIO_BATCH, `${istioExtProcUrl}/v1/messages`, testId, context()), 403, 'x_principal_not_allowed');
      expectJsonDenial(await sendAs(ISTIO_GATEWAY, `${istioExtProcUrl}/anything`, testId, context({ 'x-genops-team': 'marketing' })), 403, 'x_team_not_allowed');
      expect(received(testId)).toHaveLength(0);
    });
  });

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
