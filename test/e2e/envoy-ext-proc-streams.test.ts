/**
 * The shipped ext_proc config's gRPC streams, counted by the real Envoy (its ext_proc stats, both
 * filters): a JSON answer is read on the deciding stream alone; only an event stream opens the
 * metering stream (observability_mode, behind its content-type matcher); a request that is not an
 * AI call costs one message; and a route an operator turned off with ExtProcPerRoute reaches its
 * upstream without any stream, while every other path stays governed. And the same config over a
 * Unix domain socket (GENOPS_GRPC_SOCKET, Envoy's `pipe` address), as a sidecar would run it. The
 * two configs are shipped as booted (rendered from ext-proc.yaml by scripts/render-ext-proc-variants.mjs).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, startEnvoy, startService, startStubLlm, STUB_TEST_ID_HEADER, type RunningEnvoy, type RunningService, type StubLlm } from '../support/index.js';
import { context } from '../support/request-context.js';

const UNGOVERNED_ROUTE_CONFIG = 'deploy/envoy/ext-proc-ungoverned-route.yaml';
const UNIX_SOCKET_CONFIG = 'deploy/envoy/ext-proc-uds.yaml';

describe('ext_proc streams through the real Envoy (deploy/envoy/ext-proc-ungoverned-route.yaml: ext-proc.yaml and one ungoverned route)', () => {
  let llm: StubLlm;
  let service: RunningService;
  let envoy: RunningEnvoy;
  beforeAll(async () => {
    llm = await startStubLlm();
    service = await startService();
    envoy = await startEnvoy({ config: UNGOVERNED_ROUTE_CONFIG, vars: { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: llm.port } });
  });
  afterAll(async () => {
    await envoy?.stop();
    await service?.stop();
    await llm?.stop();
  });

  /** Envoy's ext_proc counters (both filters share the connection manager's ext_proc stats). */
  async function streams(): Promise<{ started: number; sent: number }> {
    const text = await (await fetch(`${envoy.adminUrl}/stats?filter=ext_proc`)).text();
    const value = (name: string) => Number(new RegExp(`ext_proc\\.${name}: (\\d+)`).exec(text)?.[1] ?? 0);
    return { started: value('streams_started'), sent: value('stream_msgs_sent') };
  }

  async function counted(send: () => Promise<unknown>): Promise<{ started: number; sent: number }> {
    const before = await streams();
    await send();
    // Observability-mode messages leave Envoy after the response: let the counters settle.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = await streams();
    return { started: after.started - before.started, sent: after.sent - before.sent };
  }

  const chat = (stream: boolean) => JSON.stringify({ model: 'claude-sonnet-4-5', stream, ...(stream ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content: 'Hello' }] });

  it('reads a JSON answer on the deciding stream alone: one stream, request headers, body, response headers and body', async () => {
    const delta = await counted(async () => {
      const response = await httpRequest(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { ...context(), 'content-type': 'application/json' }, body: chat(false) });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['x-genops-decision-id']).toBeTruthy();
    });
    expect(delta.started).toBe(1);
    expect(delta.sent).toBeGreaterThanOrEqual(4);
  });

  it('opens the metering stream for an event stream only (two streams), claimed by its decision (none unmatched)', async () => {
    const delta = await counted(async () => {
      const response = await httpRequest(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { ...context(), 'content-type': 'application/json' }, body: chat(true) });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(response.headers['x-genops-decision-id']).toBeTruthy();
      expect(response.body).toContain('data: [DONE]');
    });
    expect(delta.started).toBe(2);
    const unmatched = await (await fetch(`${service.adminUrl}/metrics`)).text();
    expect(unmatched).toMatch(/^genops_metering_unmatched_total 0$/m);
  });

  it('decides a request that is not an AI call with one message, its client headers written from dynamic metadata', async () => {
    const delta = await counted(async () => {
      const response = await httpRequest(`${envoy.url}/v1/models`, { method: 'GET', headers: context() });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['x-genops-decision-id']).toMatch(/.+/);
      expect(response.headers.ratelimit).toMatch(/;r=\d+;t=\d+$/);
    });
    expect(delta).toEqual({ started: 1, sent: 1 });
  });

  it('reaches the upstream without any stream on a route with both filters disabled, and keeps every other path governed', async () => {
    const testId = randomUUID();
    const delta = await counted(async () => {
      const response = await httpRequest(`${envoy.url}/healthz`, { method: 'GET', headers: { [STUB_TEST_ID_HEADER]: testId } });
      expect(response.status).toBe(200);
      expect(response.headers['x-genops-decision-id']).toBeUndefined();
    });
    expect(delta).toEqual({ started: 0, sent: 0 });
    expect(llm.received(testId)).toHaveLength(1);
    // No governance context: still refused everywhere else, the path prefix included, and a path
    // that only spells its way out of /healthz (dot segments, encoded slashes).
    for (const path of ['/healthz/v1/chat/completions', '/healthz/../v1/chat/completions', '/healthz%2F..%2Fv1%2Fchat%2Fcompletions', '/v1/chat/completions']) {
      const refused = await httpRequest(`${envoy.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', [STUB_TEST_ID_HEADER]: testId }, body: chat(false) });
      expect(refused.status, path).toBe(403);
    }
    expect(llm.received(testId)).toHaveLength(1);
  });
});

describe('ext_proc over a Unix domain socket (deploy/envoy/ext-proc-uds.yaml, GENOPS_GRPC_SOCKET)', () => {
  let llm: StubLlm;
  let service: RunningService;
  let envoy: RunningEnvoy;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-ext-proc-uds-'));
    const socket = join(dir, 'genops.sock');
    llm = await startStubLlm();
    service = await startService({ env: { GENOPS_GRPC_SOCKET: socket } });
    envoy = await startEnvoy({ config: UNIX_SOCKET_CONFIG, vars: { GENOPS_SOCKET: socket, UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: llm.port } });
  });
  afterAll(async () => {
    await envoy?.stop();
    await service?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('governs and meters through the socket: a refusal, a JSON answer and an event stream', async () => {
    const refused = await httpRequest(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-sonnet-4-5', messages: [] }) });
    expect(refused.status).toBe(403);
    for (const stream of [false, true]) {
      const response = await httpRequest(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { ...context(), 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-sonnet-4-5', stream, messages: [{ role: 'user', content: 'Hello' }] }) });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['x-genops-decision-id']).toBeTruthy();
    }
    const metrics = await (await fetch(`${service.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^genops_metering_unmatched_total 0$/m);
    expect(metrics).toMatch(/genops_usage_records_total\{[^}]*\} [1-9]/);
  });
});
