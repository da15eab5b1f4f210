/**
 * Hostile clients against what operators rely on: the metrics a junk x-genops-model flood must
 * not take over (through the real Envoy), /budgets on the admin port (customer ids and their
 * spend), and the start-up warning when in-memory budgets would be multiplied by replicas.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, startGovernanceStack, startService, startUpstream, type GovernanceStack, type RunningService, type Upstream } from '../support/index.js';
import { startRedis } from '../support/start-redis.js';
import { scrape } from '../telemetry/telemetry-support.js';
import { writeDefaultPolicy } from '../support/default-policy.js';

const ADMIN_TOKEN = 'operator-chosen-admin-token-0123';
const IDLE_MS = 3_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'genops-hostile-operators-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const writePolicy = (name: string, edit: (spec: Record<string, unknown>) => void) => writeDefaultPolicy(dir, name, edit);

const context = (model?: string) => ({
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': 'acme',
  'x-genops-project': 'chatbot',
  ...(model ? { 'x-genops-model': model } : {}),
});

describe('a junk x-genops-model flood against /metrics, through the real Envoy (ext_proc)', () => {
  let upstream: Upstream;
  let stack: GovernanceStack;
  beforeAll(async () => {
    upstream = await startUpstream();
    const policyPath = writePolicy('flood.yaml', (spec) => {
      spec.rateLimits = [];
    });
    stack = await startGovernanceStack({ mode: 'ext-proc', upstreamPort: upstream.port, policyPath, serviceEnv: { GENOPS_METRICS_LABEL_IDLE_MS: String(IDLE_MS) } });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.stop();
  });

  const modelSeries = async () => {
    const metrics = await scrape(stack.service.adminUrl);
    const byModel = new Map<string, number>();
    for (const sample of metrics.find('genops_requests_total')) byModel.set(sample.labels.model!, (byModel.get(sample.labels.model!) ?? 0) + sample.value);
    return { byModel, metrics };
  };
  const chat = (model: string, header?: string) =>
    httpRequest(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...context(header), 'content-type': 'application/json' },
      body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
    });

  it('never makes a junk header a label when the body names the model: the body\'s model is the model', async () => {
    for (let index = 0; index < 100; index++) {
      const response = await chat('claude-haiku-4-5', `junk-body-${index}`);
      expect(response.status, response.body).toBe(400);
      expect(response.json()).toMatchObject({ reason_code: 'x_model_mismatch' });
    }
    const { byModel } = await modelSeries();
    expect([...byModel.keys()].filter((model) => model.startsWith('junk'))).toEqual([]);
    expect(byModel.get('claude-haiku-4-5')).toBe(100);
  });

  it('lets real models back in once the junk values stop, and counts what overflowed and what was evicted', async () => {
    // Header-only requests (a GET on an AI path): the header is the only model there is.
    const sendJunk = (index: number) => httpRequest(`${stack.url}/v1/models`, { headers: context(`junk-${index}`) });
    await Promise.all(Array.from({ length: 10 }, async (_, worker) => {
      for (let index = worker; index < 120; index += 10) expect((await sendJunk(index)).status).toBe(200);
    }));
    let { byModel, metrics } = await modelSeries();
    // Bounded: 100 values at most, the rest share _other.
    expect([...byModel.keys()].filter((model) => model !== '' && model !== '_other').length).toBeLessThanOrEqual(100);
    expect(metrics.value('genops_metric_label_overflow_total', { label: 'model', outcome: 'overflowed' })).toBeGreaterThan(0);

    // The flood stops; a first-come cap would keep every new model in _other forever.
    // The labels' clock ticks once a second: wait the idle time plus a tick.
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS + 1_300));
    for (let index = 0; index < 3; index++) expect((await chat('claude-sonnet-4-5')).status).toBe(200);
    expect((await httpRequest(`${stack.url}/v1/models`, { headers: context('gpt-4o') })).status).toBe(200);
    ({ byModel, metrics } = await modelSeries());
    expect(byModel.get('claude-sonnet-4-5')).toBe(3);
    expect(byModel.get('gpt-4o')).toBe(1);
    expect(metrics.value('genops_metric_label_overflow_total', { label: 'model', outcome: 'evicted' })).toBeGreaterThanOrEqual(2);
  });
});

describe('/budgets on the admin port', () => {
  const services: RunningService[] = [];
  afterAll(async () => {
    await Promise.all(services.map((service) => service.stop()));
  });

  it('is off (404) without GENOPS_ADMIN_TOKEN; /metrics, /healthz and /readyz stay open', async () => {
    const service = await startService({ env: { OTEL_SDK_DISABLED: 'true' } });
    services.push(service);
    const budgets = await httpRequest(`${service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(budgets.status).toBe(404);
    expect(budgets.body).not.toContain('/budgets');
    for (const path of ['/metrics', '/healthz', '/readyz']) expect((await httpRequest(`${service.adminUrl}${path}`)).status, path).toBe(200);
  });

  it('needs the operator\'s bearer token: none and a wrong one get 401, the right one the document', async () => {
    const service = await startService({ env: { OTEL_SDK_DISABLED: 'true', GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });
    services.push(service);
    const url = `${service.adminUrl}/budgets`;
    const none = await httpRequest(url);
    expect(none.status).toBe(401);
    expect(none.header('www-authenticate')).toBe('Bearer realm="genops-mesh-admin"');
    expect(none.json()).toMatchObject({ error: 'unauthorized' });
    for (const authorization of [`Bearer ${ADMIN_TOKEN}x`, `Bearer ${ADMIN_TOKEN.slice(0, -1)}`, `Basic ${ADMIN_TOKEN}`, ADMIN_TOKEN]) {
      const wrong = await httpRequest(url, { headers: { authorization } });
      expect(wrong.status, authorization).toBe(401);
      expect(wrong.body).not.toContain('budgets":');
    }
    const right = await httpRequest(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(right.status).toBe(200);
    expect(right.json()).toMatchObject({ budgets: expect.any(Array), untracked_accounts: 0 });
    for (const path of ['/metrics', '/healthz', '/readyz']) expect((await httpRequest(`${service.adminUrl}${path}`)).status, path).toBe(200);
  });

  it('refuses to start with a token too short to protect anything, without echoing it', async () => {
    await expect(startService({ env: { GENOPS_ADMIN_TOKEN: 'hunter2' }, readyTimeoutMs: 5_000 })).rejects.toThrow(/GENOPS_ADMIN_TOKEN: must be at least 16 printable characters/);
  });
});

describe('budgets in memory with replicas possible', () => {
  const budgetPolicy = () => writePolicy('budgets.yaml', (spec) => {
    spec.budgets = [{ name: 'team-daily', key: ['team'], amount: '5', period: 'daily', timeZone: 'UTC' }];
  });
  const warnings = (service: RunningService) => service.logs().filter((line) => line.event === 'budgets_per_replica');
  const started: RunningService[] = [];
  afterAll(async () => {
    await Promise.all(started.map((service) => service.stop()));
  });
  const start = async (env: Record<string, string>) => {
    const service = await startService({ policyPath: budgetPolicy(), env: { OTEL_SDK_DISABLED: 'true', ...env } });
    started.push(service);
    // The warning is written right after the listening line.
    for (let attempt = 0; attempt < 50 && !service.logs().some((line) => line.event === 'listening'); attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 100));
    return service;
  };

  it('warns once at start that each replica has its own budget, naming the budgets and the two ways out', async () => {
    const service = await start({});
    const lines = warnings(service);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', budgets: ['team-daily'] });
    expect(lines[0]!.msg).toMatch(/each replica has its own budget.*GENOPS_REDIS_URL.*GENOPS_SINGLE_REPLICA=true/);
  });

  it('stays quiet when the operator says there is one replica, or budgets are shared through Redis', async () => {
    expect(warnings(await start({ GENOPS_SINGLE_REPLICA: 'true' }))).toEqual([]);
    const redis = await startRedis();
    try {
      expect(warnings(await start({ GENOPS_REDIS_URL: redis.url }))).toEqual([]);
    } finally {
      await Promise.all(started.splice(0).map((service) => service.stop()));
      await redis.stop();
    }
  });
});
