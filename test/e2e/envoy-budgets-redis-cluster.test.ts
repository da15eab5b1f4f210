/**
 * Budgets on a real Redis Cluster (3 primaries + 3 replicas, test/support/start-redis-cluster.ts),
 * through two service processes behind the real Envoy (deploy/envoy/ext-proc.yaml): each account in
 * its own slot, never overspent by the two replicas together, and a primary killed mid-traffic —
 * each budget follows its failureMode during the election, nothing is lost or counted twice, and the
 * service recovers without a restart.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import calculateSlot from 'cluster-key-slot';
import type { BudgetAccount } from '../../src/limits/budget-ledger.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisBudgetLedger, type RedisBudgetLedger } from '../../src/limits/redis-budget-ledger.js';
import { httpRequest, REPO_ROOT, startGovernanceStack, startStubLlm, STUB_USAGE_HEADER, type GovernanceStack, type StubLlm } from '../support/index.js';
import { startRedisCluster, type RunningRedisCluster } from '../support/start-redis-cluster.js';

const DAY = 86_400_000;
/** claude-sonnet-4-5 at $3 / $15 per million tokens; every stub response bills 10 + 10 tokens: $0.00018. */
const COST_NANO = 10 * 3_000 + 10 * 15_000;
const USAGE = JSON.stringify({ input: 10, output: 10 });

function writePolicy(): { path: string; dir: string } {
  const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  // Limits that never run out here: only their failure modes matter (each keyed like the budgets, so both can sit on one shard).
  policy.spec.rateLimits = [
    { name: 'research-rl', key: ['project'], selector: { teams: ['ml-research'] }, capacity: 1_000_000, refill: { amount: 1_000_000, every: '60s' }, failureMode: 'closed' },
    { name: 'platform-rl', key: ['project'], selector: { teams: ['ml-platform'] }, capacity: 1_000_000, refill: { amount: 1_000_000, every: '60s' }, failureMode: 'open' },
  ];
  policy.spec.pricing = { defaults: false, version: 'e2e-cluster', models: [{ model: 'claude-sonnet-4-5', input: '3', output: '15' }] };
  policy.spec.budgets = [
    // Every request also reserves on its team's account: two accounts, two slots.
    { name: 'team-daily', key: ['team'], amount: '1000', period: 'daily', timeZone: 'UTC' },
    { name: 'tight-daily', key: ['project'], selector: { teams: ['data-science'] }, amount: '0.10', period: 'daily', timeZone: 'UTC', failureMode: 'closed' },
    { name: 'closed-daily', key: ['project'], selector: { teams: ['ml-research'] }, amount: '1000', period: 'daily', timeZone: 'UTC', failureMode: 'closed' },
    { name: 'open-daily', key: ['project'], selector: { teams: ['ml-platform'] }, amount: '1000', period: 'daily', timeZone: 'UTC', failureMode: 'open' },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'genops-cluster-budgets-'));
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, stringify(policy));
  return { path, dir };
}

/** JSON answers come at once; streamed ones take 8 pieces 100 ms apart, so concurrent streams are all held together. */
const body = (stream = false) => JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 1000, stream, messages: [{ role: 'user', content: 'Hello' }] });
const WORST_USD = (Buffer.byteLength(body(true)) * 3 + 1000 * 15) / 1e6;
const headers = (team: string, project: string) => ({
  'content-type': 'application/json',
  'x-genops-team': team,
  'x-genops-customer-id': `c-${randomUUID().slice(0, 8)}`,
  'x-genops-project': project,
  [STUB_USAGE_HEADER]: USAGE,
});

const dayStart = () => Math.floor(Date.now() / DAY) * DAY;
const account = (budget: string, value: string, limitUsd: number): BudgetAccount => ({ id: `${budget}|${value}`, limit: limitUsd * 1e9, period: { kind: 'calendar', startMs: dayStart(), endMs: dayStart() + DAY } });
/** A rate-limit bucket's key (redis-rate-limit-store.ts: "genops:rl:{<limit>:<dimensions>|<values>}"). */
const bucketKey = (limit: string, project: string) => `genops:rl:{${limit}:project|${project}}`;
/** The key whose slot holds the account (see redis-budget-ledger.ts: the storage key is the hash tag). */
const accountKey = (budget: string, value: string) => `genops:budget:{c:${dayStart()}:${budget}|${value}}:acct`;

describe('budgets on a Redis Cluster, shared by two replicas behind Envoy', () => {
  let cluster: RunningRedisCluster;
  let llm: StubLlm;
  let stacks: GovernanceStack[] = [];
  let reader: RedisBudgetLedger;
  let dir: string;
  beforeAll(async () => {
    const policy = writePolicy();
    dir = policy.dir;
    [cluster, llm] = await Promise.all([startRedisCluster({ nodeTimeoutMs: 1_000 }), startStubLlm({ chunkDelayMs: 100 })]);
    // A generous Redis timeout on a busy test machine (2 cores shared by many processes): the failure
    // modes are the subject of one test below, not noise in the others.
    const serviceEnv = { GENOPS_REDIS_URL: cluster.url, GENOPS_REDIS_TIMEOUT_MS: '500', LOG_LEVEL: 'warn' };
    stacks = await Promise.all([0, 1].map(() => startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath: policy.path, serviceEnv })));
    const client = connectRedis(cluster.target, { timeoutMs: 2_000, onError: () => undefined });
    if (!(await waitForRedis(client, 10_000))) throw new Error('the test reader could not connect to the cluster');
    reader = createRedisBudgetLedger({ client, clock: () => Date.now() });
    // Each replica reserves through the cluster before the tests (until connected, budgets follow their failure mode).
    for (const stack of stacks) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const response = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers('ml-research', `warm-${randomUUID().slice(0, 6)}`), body: body() });
        if (response.status === 200) break;
        if (Date.now() > deadline) throw new Error(`replica not reserving through the cluster: ${response.status} ${response.body}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }, 90_000);
  afterAll(async () => {
    for (const stack of stacks) await stack.stop().catch(() => undefined);
    await reader?.close();
    await llm?.stop();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function spentOf(budget: string, value: string): Promise<number> {
    return (await reader.state([account(budget, value, 1000)]))[0]!.spent;
  }

  it('spreads budget accounts over the slots and shards', async () => {
    const projects = Array.from({ length: 24 }, (_, index) => `spread-${index}-${randomUUID().slice(0, 4)}`);
    for (const [index, project] of projects.entries()) {
      const response = await httpRequest(`${stacks[index % 2]!.url}/v1/messages`, { method: 'POST', headers: headers('ml-research', project), body: body() });
      expect(response.status, response.body).toBe(200);
    }
    const slots = new Set(projects.map((project) => calculateSlot(accountKey('closed-daily', project))));
    expect(slots.size).toBeGreaterThan(20);
    const holders = new Set<number>();
    for (const project of projects) {
      const key = accountKey('closed-daily', project);
      const primary = await cluster.primaryOf(key);
      const client = primary.client();
      // Redis itself agrees on the slot, and the account's keys are there.
      expect(Number(await client.call('CLUSTER', 'KEYSLOT', key))).toBe(calculateSlot(key));
      expect(Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', calculateSlot(key)))).toBeGreaterThanOrEqual(1);
      expect(await client.exists(key)).toBe(1);
      holders.add(primary.port);
    }
    // 24 accounts over 3 primaries: every one of them holds budget keys (odds of missing one: 3 × (2/3)^24 ≈ 0.002 %).
    expect(holders.size).toBe(3);
  });

  it('never overspends together: concurrent requests through both replicas admit only what the budget affords', async () => {
    const project = `tight-${randomUUID().slice(0, 6)}`;
    const responses = await Promise.all(
      // Streams: each holds its reservation ~0.7 s, so no settlement frees room while the others reserve.
      Array.from({ length: 14 }, (_, index) => httpRequest(`${stacks[index % 2]!.url}/v1/messages`, { method: 'POST', headers: headers('data-science', project), body: body(true) })),
    );
    const passed = responses.filter((response) => response.status === 200).length;
    expect(responses.filter((response) => response.status !== 200 && response.status !== 429).map((response) => `${response.status} ${response.body}`)).toEqual([]);
    expect(passed).toBe(Math.floor(0.1 / WORST_USD));
    await expect.poll(() => spentOf('tight-daily', project), { timeout: 10_000 }).toBe(passed * COST_NANO);
  });

  it('a primary killed mid-traffic: open admits and closed refuses during the election, then nothing is lost or doubled, without a restart', async () => {
    // Two projects whose budget accounts and rate-limit buckets all live on one primary: the one to kill.
    const victim = (await cluster.primaries())[0]!;
    const onVictim = async (keys: string[]) => (await Promise.all(keys.map((key) => cluster.primaryOf(key)))).every((node) => node.port === victim.port);
    const pick = async (prefix: string, budget: string, limit: string) => {
      for (let attempt = 0; ; attempt++) {
        const candidate = `${prefix}-${attempt}-${randomUUID().slice(0, 4)}`;
        if (await onVictim([accountKey(budget, candidate), bucketKey(limit, candidate)])) return candidate;
      }
    };
    const closedProject = await pick('closed', 'closed-daily', 'research-rl');
    const openProject = await pick('open', 'open-daily', 'platform-rl');
    const outcomes: { team: string; status: number; at: number; body: string }[] = [];
    let stop = false;
    const traffic = async (team: string, project: string, stack: GovernanceStack) => {
      while (!stop) {
        const response = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(team, project), body: body() });
        outcomes.push({ team, status: response.status, at: Date.now(), body: response.body });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const loops = [traffic('ml-research', closedProject, stacks[0]!), traffic('ml-research', closedProject, stacks[1]!), traffic('ml-platform', openProject, stacks[0]!), traffic('ml-platform', openProject, stacks[1]!)];
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // The keys are where the test expects them: the limit and the budget of both projects on the victim.
    for (const key of [accountKey('closed-daily', closedProject), bucketKey('research-rl', closedProject), accountKey('open-daily', openProject), bucketKey('platform-rl', openProject)]) {
      expect(await victim.client().exists(key), key).toBe(1);
    }
    const killedAt = Date.now();
    await victim.process.stop({ signal: 'SIGKILL', timeoutMs: 5_000 });
    // The replica is promoted (node timeout 1 s + election), then the services see the new map.
    await cluster.waitHealthy(20_000);
    const healthyAt = Date.now();
    // Traffic goes on until closed requests pass again for a while: recovered without a restart.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const recent = outcomes.filter((outcome) => outcome.team === 'ml-research' && outcome.at > healthyAt);
      if (recent.length >= 20 && recent.slice(-20).every((outcome) => outcome.status === 200)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    stop = true;
    await Promise.all(loops);

    const closed = outcomes.filter((outcome) => outcome.team === 'ml-research');
    const open = outcomes.filter((outcome) => outcome.team === 'ml-platform');
    // failureMode open: every request admitted, before, during and after the election.
    expect(open.filter((outcome) => outcome.status !== 200).map((outcome) => `${outcome.status} ${outcome.body}`)).toEqual([]);
    // failureMode closed (the limit's and the budget's): admitted, or refused with 503 by the one that could not be checked; refused only around the election.
    expect(closed.filter((outcome) => outcome.status !== 200 && outcome.status !== 503).map((outcome) => `${outcome.status} ${outcome.body}`)).toEqual([]);
    const refused = closed.filter((outcome) => outcome.status === 503);
    expect(refused.length, 'closed budgets refused while their shard was electing').toBeGreaterThan(0);
    for (const outcome of refused) {
      expect(['x_rate_limit_unavailable', 'BUDGET_RESERVATION_FAILED']).toContain((JSON.parse(outcome.body) as { reason_code: string }).reason_code);
      expect(outcome.at).toBeGreaterThanOrEqual(killedAt - 600);
    }
    expect(closed.slice(-20).every((outcome) => outcome.status === 200), 'closed budgets admit again after the failover').toBe(true);
    // Every admitted request's cost is on its account exactly once: the settlements that met the
    // election were retried until the promoted replica took them, none counted twice.
    const admittedClosed = closed.filter((outcome) => outcome.status === 200).length;
    const admittedOpen = open.filter((outcome) => outcome.status === 200).length;
    await expect.poll(() => spentOf('closed-daily', closedProject), { timeout: 20_000, interval: 250 }).toBe(admittedClosed * COST_NANO);
    await expect.poll(() => spentOf('open-daily', openProject), { timeout: 20_000, interval: 250 }).toBe(admittedOpen * COST_NANO);
    // Its phases are bounded one by one (election ≤ 20 s, recovery ≤ 20 s, each request ≤ 10 s, each
    // poll ≤ 20 s); on a loaded 2-core machine their sum can pass 90 s without anything being wrong.
  }, 180_000);
});
