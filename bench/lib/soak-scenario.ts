/**
 * The soak (issue 19): a steady rate of AI requests through Envoy (ext_proc) to two genops-mesh
 * replicas sharing budgets and rate limits on a real Redis Cluster (3 primaries + 3 replicas),
 * for 20 minutes by default. It checks what a long run would show and a short one would not:
 * RSS of both replicas sampled all along (flat: the last fifth of the run within 10 % or 10 MB of
 * the second fifth), 0 errors, and the money — once everything settled, every budget's spent
 * across its accounts equals the sum of the usage records' costs, exactly.
 * Not part of the default bench (nor npm test): `npm run bench -- --scenario soak [--duration 120]`.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../src/demo/repo-root.js';
import { startGovernanceStack, type GovernanceStack } from '../../src/demo/start-governance-stack.js';
import type { BudgetAccount } from '../../src/limits/budget-ledger.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisBudgetLedger } from '../../src/limits/redis-budget-ledger.js';
import { httpRequest } from '../../test/support/http-request.js';
import { startRedisCluster, type RunningRedisCluster } from '../../test/support/start-redis-cluster.js';
import { startStubLlm, STUB_USAGE_HEADER, type StubLlm } from '../../test/support/stub-llm.js';
import { rssMb } from './process-stats.js';
import type { Progress } from './progress.js';

export interface SoakOptions {
  readonly durationS: number;
  /** Requests per second, spread evenly over each second. */
  readonly rate: number;
  readonly out: string;
}

export interface SoakResult {
  readonly durationS: number;
  readonly rate: number;
  readonly sent: number;
  readonly admitted: number;
  readonly errors: number;
  readonly errorSamples: string[];
  /** genops_backend_errors_total of each replica (Redis timeouts, connection errors). */
  readonly backendErrors: number[];
  readonly usageRecords: number;
  /** Records of streams that ended without the provider's usage (charged at least their hold). */
  readonly estimatedRecords: number;
  /** What the usage records charge, nano-USD: each record's cost rounded up to a nano-USD as the ledger does (an estimated one at least its hold). */
  readonly usageNano: string;
  /** Spent per budget, summed over its accounts, nano-USD. */
  readonly spentNano: Record<string, string>;
  readonly rss: { readonly replica: number; readonly samplesMb: number[]; readonly heapUsedMb: number[]; readonly earlyMb: number; readonly lateMb: number; readonly peakMb: number }[];
  readonly rssFlat: boolean;
  readonly moneyExact: boolean;
  readonly loadAverage: { readonly start: string; readonly end: string };
}

const DAY = 86_400_000;
const TEAMS = ['ml-platform', 'data-science', 'ml-research'];
const PROJECTS = Array.from({ length: 40 }, (_, index) => `soak-project-${index}`);
const RSS_SAMPLE_MS = 5_000;

function writePolicy(): string {
  const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  policy.spec.pricing = { defaults: false, version: 'soak', models: [{ model: 'claude-sonnet-4-5', input: '3', output: '15' }] };
  // Limits and budgets that every request passes through but none refuses: the soak is about leaks and exact money, not refusals.
  policy.spec.rateLimits = [{ name: 'per-customer', key: ['customerId'], capacity: 1_000_000, refill: { amount: 1_000_000, every: '60s' }, failureMode: 'closed' }];
  policy.spec.budgets = [
    { name: 'team-daily', key: ['team'], amount: '1000000', period: 'daily', timeZone: 'UTC', failureMode: 'closed' },
    { name: 'project-daily', key: ['project'], amount: '1000000', period: 'daily', timeZone: 'UTC', failureMode: 'closed' },
  ];
  const path = join(mkdtempSync(join(tmpdir(), 'genops-soak-')), 'policy.yaml');
  writeFileSync(path, stringify(policy));
  return path;
}

/** "0.000123456789" USD → nano-USD, rounded up (the ledger settles ceil(pico / 1000)). */
function usdToNano(usd: string): bigint {
  const [whole, fraction = ''] = usd.split('.');
  const pico = BigInt(whole!) * 10n ** 12n + BigInt(fraction.padEnd(12, '0').slice(0, 12) || '0');
  if (fraction.length > 12 && /[1-9]/.test(fraction.slice(12))) throw new Error(`cost ${usd} is finer than a pico-USD`);
  return (pico + 999n) / 1000n;
}

const mean = (values: readonly number[]) => (values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length);

export async function runSoak(options: SoakOptions, progress: Progress, loadavgText: () => string): Promise<SoakResult> {
  const loadAtStart = loadavgText();
  progress.note(`soak: starting a Redis Cluster (3 primaries + 3 replicas), the stub LLM and two replicas behind Envoy`);
  let cluster: RunningRedisCluster | undefined;
  let llm: StubLlm | undefined;
  const stacks: GovernanceStack[] = [];
  try {
    cluster = await startRedisCluster({ nodeTimeoutMs: 2_000 });
    llm = await startStubLlm({ chunkDelayMs: 2 });
    const policyPath = writePolicy();
    // Below the shipped Envoy config's ext_proc message_timeout (200 ms): a slow Redis is a failure mode, not a 504.
    const serviceEnv = { GENOPS_REDIS_URL: cluster.url, GENOPS_REDIS_TIMEOUT_MS: '150', LOG_LEVEL: 'info' };
    for (let replica = 0; replica < 2; replica++) stacks.push(await startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath, serviceEnv }));
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });

    let sent = 0;
    let admitted = 0;
    let errors = 0;
    const errorSamples: string[] = [];
    const inFlight = new Set<Promise<void>>();
    const send = (index: number) => {
      const stack = stacks[index % stacks.length]!;
      const input = 10 + (index % 97);
      const output = 5 + ((index * 7) % 211);
      const stream = index % 3 === 0;
      const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 512, stream, messages: [{ role: 'user', content: `soak request ${index}` }] });
      const request = httpRequest(`${stack.url}/v1/messages`, {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'x-genops-team': TEAMS[index % TEAMS.length]!,
          'x-genops-project': PROJECTS[index % PROJECTS.length]!,
          'x-genops-customer-id': `soak-customer-${index % 500}`,
          [STUB_USAGE_HEADER]: JSON.stringify({ input, output }),
        },
        body,
      })
        .then((response) => {
          if (response.status === 200) admitted++;
          else {
            errors++;
            if (errorSamples.length < 10) errorSamples.push(`${response.status} ${response.body.slice(0, 200)}`);
          }
        })
        .catch((error: unknown) => {
          errors++;
          if (errorSamples.length < 10) errorSamples.push(String(error));
        })
        .finally(() => inFlight.delete(request));
      inFlight.add(request);
    };

    const pids = stacks.map((stack) => stack.service.process.pid);
    const samples: number[][] = pids.map(() => []);
    /** V8 heap used (MiB) from each replica's /metrics: tells a leak (it climbs) from the heap's own growth (RSS only). */
    const heapSamples: number[][] = pids.map(() => []);
    const sampleHeap = () =>
      stacks.forEach((stack, replica) => {
        void fetch(`${stack.service.adminUrl}/metrics`)
          .then((response) => response.text())
          .then((text) => {
            const line = text.split('\n').find((entry) => entry.startsWith('nodejs_heap_size_used_bytes'));
            if (line) heapSamples[replica]!.push(Math.round(Number(line.split(' ').at(-1)) / 1024 / 102.4) / 10);
          })
          .catch(() => undefined);
      });
    const sample = () =>
      pids.forEach((pid, replica) => {
        const exited = stacks[replica]!.service.process.exitCode;
        if (exited !== undefined) throw new Error(`soak: replica ${replica + 1} exited (${exited}): ${stacks[replica]!.service.process.stderrTail() || stacks[replica]!.service.process.stdoutLines.slice(-5).join('\n')}`);
        samples[replica]!.push(Math.round(rssMb(pid) * 10) / 10);
      });
    progress.step(1, 1, `soak: ${options.rate} req/s for ${options.durationS} s through Envoy, budgets and limits on the Redis Cluster`, options.durationS + 10);
    sample();
    const startedAt = Date.now();
    const endAt = startedAt + options.durationS * 1_000;
    let nextSampleAt = startedAt + RSS_SAMPLE_MS;
    // Open loop: request i leaves at startedAt + i / rate, whatever the previous ones are doing.
    while (Date.now() < endAt) {
      const due = Math.floor(((Date.now() - startedAt) / 1_000) * options.rate);
      while (sent < due) send(sent++);
      if (Date.now() >= nextSampleAt) {
        sample();
        sampleHeap();
        nextSampleAt += RSS_SAMPLE_MS;
        progress.update(`${sent.toLocaleString('en-US')} sent, ${errors} errors, RSS ${samples.map((series) => `${series.at(-1)} MB`).join(' / ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(inFlight);
    sample();

    // Settlements are asynchronous (after the response): read until the ledger stops moving.
    const client = connectRedis(cluster.target, { timeoutMs: 2_000, onError: () => undefined });
    if (!(await waitForRedis(client, 10_000))) throw new Error('soak: cannot read the ledger on the cluster');
    const reader = createRedisBudgetLedger({ client, clock: () => Date.now() });
    // A run that crosses midnight UTC counts in two daily periods: read every day it touched.
    const days: number[] = [];
    for (let day = Math.floor(startedAt / DAY) * DAY; day <= Date.now(); day += DAY) days.push(day);
    const accountsOf = (budget: string, values: readonly string[]): BudgetAccount[] =>
      days.flatMap((dayStart) => values.map((value) => ({ id: `${budget}|${value}`, limit: 1_000_000 * 1e9, period: { kind: 'calendar' as const, startMs: dayStart, endMs: dayStart + DAY } })));
    const spentOf = async (budget: string, values: readonly string[]) => (await reader.state(accountsOf(budget, values))).reduce((sum, state) => sum + BigInt(state.spent), 0n);
    /**
     * What each usage record charges a budget (README "Budgets"): nothing for an upstream error or
     * a request never sent; its cost; and for a stream that ended without the provider's usage
     * (estimated, e.g. cut by a client or a timeout) at least its hold (unknownUsage: hold).
     */
    const usage = () => {
      let records = 0;
      let estimated = 0;
      let nano = 0n;
      for (const stack of stacks) {
        for (const line of stack.service.process.stdoutLines) {
          if (!line.includes('"event":"usage"')) continue;
          const record = JSON.parse(line) as { cost: string | null; estimated: boolean; outcome: string; reserved?: number };
          records++;
          if (record.outcome === 'upstream_error' || record.outcome === 'not_sent') continue;
          const held = BigInt(Math.round((record.reserved ?? 0) * 1e9));
          const priced = record.cost === null ? undefined : usdToNano(record.cost);
          if (record.estimated) estimated++;
          nano += record.estimated ? (priced !== undefined && priced > held ? priced : held) : (priced ?? held);
        }
      }
      return { records, estimated, nano };
    };
    let spent: Record<string, bigint> = {};
    let records = usage();
    for (let attempt = 0; attempt < 60; attempt++) {
      spent = { 'team-daily': await spentOf('team-daily', TEAMS), 'project-daily': await spentOf('project-daily', PROJECTS) };
      records = usage();
      if (Object.values(spent).every((value) => value === records.nano)) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await reader.close();

    const fifth = (series: readonly number[], which: number) => series.slice(Math.floor((series.length * which) / 5), Math.floor((series.length * (which + 1)) / 5));
    const rss = samples.map((series, replica) => ({ replica, samplesMb: series, heapUsedMb: heapSamples[replica]!, earlyMb: Math.round(mean(fifth(series, 1)) * 10) / 10, lateMb: Math.round(mean(fifth(series, 4)) * 10) / 10, peakMb: Math.max(...series) }));
    const rssFlat = rss.every(({ earlyMb, lateMb }) => lateMb - earlyMb <= Math.max(10, earlyMb * 0.1));
    // Every usage record (a completed AI exchange, also one whose client saw an error) is on every budget once.
    const moneyExact = Object.values(spent).every((value) => value === records.nano);
    const backendErrors = await Promise.all(stacks.map(async (stack) => {
      const text = await (await fetch(`${stack.service.adminUrl}/metrics`)).text();
      return text.split('\n').filter((line) => line.startsWith('genops_backend_errors_total')).reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
    }));
    const result: SoakResult = {
      durationS: Math.round((Date.now() - startedAt) / 1_000),
      rate: options.rate,
      sent,
      admitted,
      errors,
      errorSamples,
      backendErrors,
      usageRecords: records.records,
      estimatedRecords: records.estimated,
      usageNano: records.nano.toString(),
      spentNano: Object.fromEntries(Object.entries(spent).map(([budget, value]) => [budget, value.toString()])),
      rss,
      rssFlat,
      moneyExact,
      loadAverage: { start: loadAtStart, end: loadavgText() },
    };
    progress.done(
      `${sent.toLocaleString('en-US')} sent, ${errors} errors; usage ${records.records} records = ${records.nano} nano-USD; spent ${Object.entries(spent).map(([budget, value]) => `${budget} ${value}`).join(', ')}` +
        ` (${moneyExact ? 'exact' : 'MISMATCH'}); RSS ${rss.map(({ earlyMb, lateMb, peakMb }) => `${earlyMb}→${lateMb} MB (peak ${peakMb})`).join(' / ')} (${rssFlat ? 'flat' : 'GROWING'})`,
    );
    agent.destroy();
    return result;
  } finally {
    for (const stack of stacks) await stack.stop().catch(() => undefined);
    await llm?.stop().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
  }
}

export function renderSoakMarkdown(result: SoakResult): string {
  const lines = [
    `## Soak: ${result.rate} req/s for ${result.durationS} s through Envoy, budgets and limits on a Redis Cluster`,
    '',
    `| | |`,
    `|---|---|`,
    `| requests sent / admitted / errors | ${result.sent} / ${result.admitted} / ${result.errors} |`,
    `| Redis errors counted by the replicas (genops_backend_errors_total) | ${result.backendErrors.join(' / ')} |`,
    `| usage records (of them estimated: cut before the provider's usage), what they charge (nano-USD) | ${result.usageRecords} (${result.estimatedRecords}), ${result.usageNano} |`,
    ...Object.entries(result.spentNano).map(([budget, value]) => `| spent on \`${budget}\` (all accounts, nano-USD) | ${value} |`),
    `| money exact (every budget's spent = what the usage records charge) | ${result.moneyExact ? 'yes' : '**no**'} |`,
    ...result.rss.map(({ replica, earlyMb, lateMb, peakMb, heapUsedMb }) => {
      // The heap is a sawtooth (collected now and then): its lowest point per fifth is what a leak would raise.
      const floor = (which: number) => Math.min(...heapUsedMb.slice(Math.floor((heapUsedMb.length * which) / 5), Math.max(1, Math.floor((heapUsedMb.length * (which + 1)) / 5))));
      return `| replica ${replica + 1} RSS: 2nd fifth → last fifth (peak); V8 heap used, lowest in 2nd fifth → last fifth | ${earlyMb} → ${lateMb} MB (${peakMb}); ${floor(1)} → ${floor(4)} MB |`;
    }),
    `| RSS flat (last fifth within 10 % or 10 MB of the 2nd) | ${result.rssFlat ? 'yes' : '**no**'} |`,
    `| load average (1/5/15 min) at start / end | ${result.loadAverage.start} / ${result.loadAverage.end} |`,
    '',
  ];
  if (result.errorSamples.length > 0) lines.push('Errors (first 10):', '', ...result.errorSamples.map((sample) => `- ${sample}`), '');
  return lines.join('\n');
}
