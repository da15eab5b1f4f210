/**
 * Observed metering across replicas, through the real Envoy booting the shipped
 * deploy/envoy/ext-proc-replicas.yaml (ext-proc.yaml with the genops_mesh cluster on two service
 * processes, each ext_proc stream balanced round robin: an event stream's deciding and metering
 * streams land on different replicas), a real Redis, budgets in force: every streamed answer
 * (OpenAI and Anthropic SSE with usage) is settled exactly once by the replica that metered it —
 * one usage record per exchange, the budget spent to the nano-USD of the records' cost, nothing
 * left reserved; a stream the client cuts settles once; and a deciding replica killed after the
 * hand-over is settled by the other, never twice, never lost.
 */
import { randomUUID } from 'node:crypto';
import { request as rawRequest } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BudgetAccount } from '../../src/limits/budget-ledger.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisBudgetLedger, type RedisBudgetLedger } from '../../src/limits/redis-budget-ledger.js';
import { httpRequest, REPO_ROOT, startEnvoy, startService, startStubLlm, STUB_BEHAVIOR_HEADER, STUB_USAGE_HEADER, type RunningEnvoy, type RunningService, type StubLlm } from '../support/index.js';
import { disconnectMidResponse } from '../support/disconnect-mid-response.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';

const CONFIG = 'deploy/envoy/ext-proc-replicas.yaml';
const DAY = 86_400_000;
const BUDGET = 'project-daily';

function writePolicy(): { path: string; dir: string } {
  const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  policy.spec.rateLimits = [];
  policy.spec.pricing = { defaults: false, version: 'e2e-replicas', models: [{ model: 'claude-sonnet-4-5', input: '3', output: '15' }] };
  // estimate: a cut stream is charged what its record says, so spent == the records' cost holds for every outcome.
  policy.spec.budgets = [{ name: BUDGET, key: ['project'], amount: '100', period: 'daily', timeZone: 'UTC', unknownUsage: 'estimate', maxOutputTokens: 1000 }];
  const dir = mkdtempSync(join(tmpdir(), 'genops-replicas-'));
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, stringify(policy));
  return { path, dir };
}

const dayStart = () => Math.floor(Date.now() / DAY) * DAY;
const account = (project: string): BudgetAccount => ({ id: `${BUDGET}|${project}`, limit: 100e9, period: { kind: 'calendar', startMs: dayStart(), endMs: dayStart() + DAY } });
const headers = (project: string, usage: { input: number; output: number }, behavior?: string) => ({
  'content-type': 'application/json',
  ...(behavior ? { [STUB_BEHAVIOR_HEADER]: behavior } : {}),
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': `c-${randomUUID().slice(0, 8)}`,
  'x-genops-project': project,
  [STUB_USAGE_HEADER]: JSON.stringify(usage),
});
const openAiStream = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 500, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }] });
const anthropicStream = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 500, stream: true, messages: [{ role: 'user', content: 'Hello' }] });

/** A usage record's cost (a decimal USD string) as the ledger charges it: nano-USD, rounded up. */
function nanoOf(usd: string): number {
  const [whole, fraction = ''] = usd.split('.');
  const pico = BigInt(whole!) * 10n ** 12n + BigInt(fraction.padEnd(12, '0').slice(0, 12));
  return Number((pico + 999n) / 1000n);
}

async function eventually<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function metric(service: RunningService, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${service.adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (pattern.test(line)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

let redis: RunningRedis;
let llm: StubLlm;
let services: RunningService[] = [];
let envoy: RunningEnvoy;
let ledger: RedisBudgetLedger;
let dir: string;

/** Redis, the stub LLM, two service processes and the Envoy booting the shipped replicas config. */
async function deploy(): Promise<void> {
  const policy = writePolicy();
  dir = policy.dir;
  // 8 pieces 150 ms apart: a stream lasts about a second, long enough to kill a replica in the middle.
  [redis, llm] = await Promise.all([startRedis(), startStubLlm({ chunkDelayMs: 150 })]);
  // No GENOPS_METERING_HANDOFF_SECRET: the replicas share the key they keep in Redis, as the Helm chart and kustomize run them.
  const env = { GENOPS_REDIS_URL: redis.url, GENOPS_REDIS_TIMEOUT_MS: '1000', GENOPS_METERING_GRACE_MS: '1000', GENOPS_METERING_CLAIM_TTL_MS: '2000', GENOPS_BUDGET_HOLD_TTL_MS: '3000', LOG_LEVEL: 'debug' };
  services = await Promise.all([0, 1].map(() => startService({ policyPath: policy.path, env })));
  envoy = await startEnvoy({ config: CONFIG, vars: { GENOPS_PORT: services[0]!.grpcPort, GENOPS_HOST_2: '127.0.0.1', GENOPS_PORT_2: services[1]!.grpcPort, UPSTREAM_PORT: llm.port } });
  const client = connectRedis(redis.url, { timeoutMs: 2_000, onError: () => undefined });
  if (!(await waitForRedis(client, 5_000))) throw new Error('the test reader could not connect to redis');
  ledger = createRedisBudgetLedger({ client, clock: () => Date.now() });
}

async function teardown(): Promise<void> {
  await envoy?.stop();
  for (const service of services) await service.stop().catch(() => undefined);
  await ledger?.close();
  await llm?.stop();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** The usage records of `project` across both replicas (a killed one's included, as it logged them). */
const usageOf = (project: string): (Record<string, unknown> & { replica: number })[] =>
  services.flatMap((service, replica) => service.logs().filter((line) => line.event === 'usage' && line.project === project).map((line) => ({ ...line, replica })));
/** The replica that logged the decision (LOG_LEVEL debug logs allowed ones). */
const deciderOf = (decisionId: unknown) => services.findIndex((service) => service.logs().some((line) => line.event === 'decision' && line.decision_id === decisionId));

async function settledState(project: string, count: number) {
  return eventually(async () => {
    const records = usageOf(project);
    const [state] = await ledger.state([account(project)]);
    return records.length >= count && state!.reserved === 0 ? { records, state: state! } : undefined;
  }, `${count} usage records of ${project} and nothing reserved`);
}

/** Streams the genops_mesh cluster's hosts served so far (Envoy's per-host rq_total). */
async function streamsPerReplica(): Promise<number[]> {
  const text = await (await fetch(`${envoy.adminUrl}/clusters`)).text();
  return services.map((service) => Number(new RegExp(`^genops_mesh::127\\.0\\.0\\.1:${service.grpcPort}::rq_total::(\\d+)$`, 'm').exec(text)?.[1] ?? 0));
}

/**
 * Streams one answer (8 pieces `chunkDelayMs` apart) and, once its first piece arrived (the exchange
 * handed over), kills the replica `victim` picks (given the deciding one); then `during` runs `afterMs` later.
 */
function streamAndKill(project: string, chunkDelayMs: number, victim: (decider: number) => number, during?: { afterMs: number; run: () => void }): Promise<{ decisionId: string; body: string; killed: number; decider: number }> {
  return new Promise((resolve, reject) => {
    const body = openAiStream;
    const request = rawRequest(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers(project, { input: 100, output: 20 }, `chunk-delay=${chunkDelayMs}`), 'content-length': Buffer.byteLength(body) } }, (response) => {
      const decisionId = String(response.headers['x-genops-decision-id']);
      let text = '';
      let killed = -1;
      let decider = -1;
      response.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (killed !== -1) return;
        decider = deciderOf(decisionId);
        if (decider === -1) return reject(new Error(`no replica logged decision ${decisionId}`));
        killed = victim(decider);
        void services[killed]!.stop({ signal: 'SIGKILL' });
        if (during) setTimeout(during.run, during.afterMs);
      });
      response.on('end', () => resolve({ decisionId, body: text, killed, decider }));
      response.on('error', () => resolve({ decisionId, body: text, killed, decider }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

describe('observed metering across two replicas behind the real Envoy (deploy/envoy/ext-proc-replicas.yaml), budgets in Redis', () => {
  beforeAll(deploy, 60_000);
  afterAll(teardown);

  it('settles each streamed answer once, on the replica that metered it: one record per exchange, spent == the records\' cost to the nano-USD', async () => {
    const project = `replicas-${randomUUID().slice(0, 8)}`;
    const adoptedBefore = (await Promise.all(services.map((service) => metric(service, /^genops_metering_handoffs_total\{outcome="adopted"\}/)))).reduce((a, b) => a + b, 0);
    const recordsCounted = async () => (await Promise.all(services.map((service) => metric(service, /^genops_usage_records_total\{/)))).reduce((a, b) => a + b, 0);
    const countedBefore = await recordsCounted();
    const ids: string[] = [];
    for (let index = 0; index < 6; index++) {
      const anthropic = index % 2 === 1;
      const response = await httpRequest(`${envoy.url}${anthropic ? '/v1/messages' : '/v1/chat/completions'}`, { method: 'POST', headers: headers(project, { input: 100 + index, output: 20 + index }), body: anthropic ? anthropicStream : openAiStream });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(response.body).toContain(anthropic ? 'message_stop' : 'data: [DONE]');
      ids.push(String(response.headers['x-genops-decision-id']));
    }
    const { records, state } = await settledState(project, ids.length);
    // Exactly once per exchange, across both replicas, with the provider's own usage.
    expect(records.map((record) => record.decision_id).sort()).toEqual([...ids].sort());
    for (const record of records) expect(record).toMatchObject({ outcome: 'completed', estimated: false });
    expect(records.map((record) => (record.tokens as { output: number }).output).sort()).toEqual([20, 21, 22, 23, 24, 25]);
    expect(state.spent).toBe(records.reduce((sum, record) => sum + nanoOf(String(record.cost)), 0));
    // The streams did cross replicas: metered (and settled) by the replica that did not decide them.
    const adopted = (await Promise.all(services.map((service) => metric(service, /^genops_metering_handoffs_total\{outcome="adopted"\}/)))).reduce((a, b) => a + b, 0);
    // Round robin alternates the streams: each deciding stream and its metering stream on different replicas.
    expect(adopted - adoptedBefore).toBe(ids.length);
    for (const record of records) expect(record.replica).toBe(1 - deciderOf(record.decision_id));
    for (const service of services) {
      expect(await metric(service, /^genops_metering_unmatched_total /)).toBe(0);
      expect(await metric(service, /^genops_metering_handoffs_total\{outcome="(refused|abandoned)"\}/)).toBe(0);
    }
    // Metrics count each exchange once: the replicas' usage-record counters add up to the records.
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // past the fallback's grace period: nothing more is settled
    expect(usageOf(project)).toHaveLength(ids.length);
    expect((await recordsCounted()) - countedBefore).toBe(ids.length);
    expect((await ledger.state([account(project)]))[0]!.spent).toBe(state.spent);
  });

  it('settles a stream the client cuts mid-way once (interrupted, estimated), on one replica', async () => {
    const project = `cut-${randomUUID().slice(0, 8)}`;
    const status = await disconnectMidResponse(`${envoy.url}/v1/chat/completions`, { headers: headers(project, { input: 100, output: 20 }), body: openAiStream, afterChunks: 2 });
    expect(status).toBe(200);
    const { records, state } = await settledState(project, 1);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(usageOf(project)).toHaveLength(1);
    expect(records[0]).toMatchObject({ outcome: 'interrupted', estimated: true });
    expect(state.spent).toBe(nanoOf(String(records[0]!.cost)));
    expect(state.spent).toBeGreaterThan(0);
  });

  it('settles on the surviving replica when the deciding one is killed after the hand-over: once, not lost, its hold renewed there meanwhile', async () => {
    const project = `killed-${randomUUID().slice(0, 8)}`;
    const before = await streamsPerReplica();
    let heldPastTtl: number | undefined;
    // 800 ms between pieces: the stream outlives the 3 s hold lifetime (GENOPS_BUDGET_HOLD_TTL_MS). Past
    // it after the deciding replica died, only the metering replica can have renewed the hold.
    const result = await streamAndKill(project, 800, (decider) => decider, { afterMs: 3_600, run: () => void ledger.state([account(project)]).then(([state]) => (heldPastTtl = state!.reserved)) });
    expect(result.killed).toBeGreaterThanOrEqual(0);
    expect(result.body).toContain('data: [DONE]');
    expect(heldPastTtl).toBeGreaterThan(0);
    const survivor = 1 - result.killed;
    // The deciding and the metering stream went to different replicas (one new stream each).
    const after = await streamsPerReplica();
    expect(after.map((count, index) => count - before[index]!)).toEqual([1, 1]);
    const { records, state } = await settledState(project, 1);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ decision_id: result.decisionId, replica: survivor });
    expect(state.spent).toBe(nanoOf(String(records[0]!.cost)));
    expect(state.spent).toBeGreaterThan(0);
    // The deciding filter had nothing left to ask: the answer reached the client whole, and was metered whole.
    expect(records[0]).toMatchObject({ outcome: 'completed', estimated: false });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(usageOf(project)).toHaveLength(1);
  });
});

describe('observed metering across two replicas: the metering replica killed mid-stream', () => {
  beforeAll(deploy, 60_000);
  afterAll(teardown);

  it('settles through the deciding replica\'s fallback once its claim lapses (interrupted, estimated): once, not lost', async () => {
    const project = `meter-killed-${randomUUID().slice(0, 8)}`;
    const result = await streamAndKill(project, 300, (decider) => 1 - decider);
    // Metering never fails the answer (failure_mode_allow): the client still gets all of it.
    expect(result.body).toContain('data: [DONE]');
    const { records, state } = await settledState(project, 1);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ decision_id: result.decisionId, replica: result.decider, outcome: 'interrupted', estimated: true });
    expect(state.spent).toBe(nanoOf(String(records[0]!.cost)));
    expect(state.spent).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(usageOf(project)).toHaveLength(1);
  });
});
