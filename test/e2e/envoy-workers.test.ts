/**
 * Two workers (GENOPS_WORKERS=2) behind the real Envoy (deploy/envoy/ext-proc.yaml) with two
 * worker threads: each Envoy thread opens its own connection to the service, the service's
 * primary hands them to different workers, and one budget is held exactly across both.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, startGovernanceStack, startStubLlm, STUB_USAGE_HEADER, type GovernanceStack, type StubLlm } from '../support/index.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { eventually } from '../telemetry/telemetry-support.js';

// claude-sonnet-4-5 at $3 / $15 per million tokens.
const POLICY = `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: envoy-workers }
spec:
  context: { required: [team, customerId] }
  teams: { ml-platform: {} }
  pricing:
    defaults: false
    version: envoy-workers
    models: [{ model: claude-sonnet-4-5, input: "3", output: "15" }]
  budgets:
    - { name: customer-daily, key: [customerId], amount: "0.10", period: daily, maxOutputTokens: 1000 }
`;

const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 1000, messages: [{ role: 'user', content: 'Hello' }] });

describe('two workers behind Envoy --concurrency 2', () => {
  let llm: StubLlm;
  let redis: RunningRedis;
  let stack: GovernanceStack;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-envoy-workers-'));
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    llm = await startStubLlm();
    redis = await startRedis();
    stack = await startGovernanceStack({
      mode: 'ext-proc',
      upstreamPort: llm.port,
      policyPath: join(dir, 'policy.yaml'),
      serviceEnv: { GENOPS_WORKERS: '2', GENOPS_REDIS_URL: redis.url, GENOPS_REDIS_TIMEOUT_MS: '2000', GENOPS_ADMIN_TOKEN: 'envoy-workers-admin-token', LOG_LEVEL: 'debug' },
      envoyConcurrency: 2,
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
    await llm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reaches both workers, and holds one budget exactly across them', async () => {
    const send = (customer: string, usage = { input: 10, output: 1000 }) =>
      httpRequest(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-genops-team': 'ml-platform', 'x-genops-customer-id': customer, [STUB_USAGE_HEADER]: JSON.stringify(usage) },
        body,
      });
    const workers = new Set(stack.service.logs().filter((line) => line.event === 'listening').map((line) => line.pid));
    expect(workers.size).toBe(2);
    // Fresh downstream connections land on either Envoy thread; each thread opens its own
    // connection to the service, and the primary hands the second one to the other worker.
    await eventually(async () => {
      expect((await send(`warm-${randomUUID().slice(0, 8)}`)).status).toBe(200);
      const stats = await (await fetch(`${stack.envoy.adminUrl}/stats?filter=^cluster\\.genops_mesh\\.upstream_cx_total$`)).text();
      const deciding = new Set(stack.service.logs().filter((line) => line.event === 'decision').map((line) => line.pid));
      return (Number(/: (\d+)/.exec(stats)?.[1]) >= 2 && deciding.size === 2) || undefined;
    }, 'both Envoy threads connected and both workers deciding', 30_000);

    // One customer, one request at a time, each on a fresh connection to either Envoy thread and so
    // to either worker. Each holds its worst case (~$0.0153: the body's bytes at $3/M + 1,000
    // output tokens at $15/M) and settles $0.01503: six fit in $0.10, then no hold does, whichever
    // worker decides — each reads what the other wrote.
    const customer = `c-${randomUUID().slice(0, 8)}`;
    const statuses: number[] = [];
    for (let request = 0; request < 24; request++) statuses.push((await send(customer)).status);
    expect(statuses).toEqual([...Array<number>(6).fill(200), ...Array<number>(18).fill(429)]);
    const deciding = new Set(stack.service.logs().filter((line) => line.event === 'decision' && line.customer_id === customer).map((line) => line.pid));
    expect(deciding, 'this customer\'s decisions made by both workers').toEqual(workers);

    const budgets = await eventually(async () => {
      const document = (await (await fetch(`${stack.service.adminUrl}/budgets`, { headers: { authorization: 'Bearer envoy-workers-admin-token' } })).json()) as { budgets: { accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
      const account = document.budgets[0]!.accounts.find((candidate) => candidate.key.includes(customer));
      return account && account.reserved_usd === 0 ? account : undefined;
    }, 'every hold settled');
    expect(budgets.spent_usd).toBeCloseTo(6 * 0.01503, 9);
  });
});
