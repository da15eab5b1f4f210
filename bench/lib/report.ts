import type { LoadResult } from './load-tools.js';
import type { ProcessUsage } from './process-stats.js';
import { mergeRuntimeWindows, type RuntimeWindow } from './runtime-stats.js';

/** Tables of the report, in order. */
export const SECTIONS = {
  'direct-closed': 'Direct gRPC, closed loop: maximum throughput (h2load, 4 connections × 16 streams)',
  'direct-open': 'Direct gRPC, open loop: latency at fixed rates (genops-loadgen, 4 connections; latency from the scheduled send time)',
  'envoy-open': 'Through a real Envoy (1 worker), open loop: latency at a fixed rate (genops-loadgen, HTTP/1.1)',
  'envoy-closed': 'Through a real Envoy (1 worker), closed loop: maximum throughput (h2load h2c, 4 connections × 16 streams)',
  'shared-limits': 'Shared limits through a real Envoy (1 worker), closed loop on Redis (genops-loadgen, HTTP/1.1, 64 in flight, 10,000 customers)',
  'tail': 'Allocation per decision: direct Check, open loop at 1,000/s, each server fresh (genops-loadgen, 4 connections)',
} as const;
export type Section = keyof typeof SECTIONS;

export interface ScenarioResult {
  /** Stable id, e.g. direct/service/check/closed or envoy/ext-authz/open@1000. */
  readonly id: string;
  readonly section: Section;
  readonly title: string;
  readonly load: LoadResult;
  /** Throughput of each round when the scenario ran in several interleaved rounds (the figures are their mean). */
  readonly roundsRps?: readonly number[];
  /** The process under test: genops-mesh or the trivial server. */
  readonly usage?: ProcessUsage | undefined;
  readonly envoyUsage?: ProcessUsage | undefined;
  /** genops_requests_total by decision during the scenario. */
  readonly decisions?: Record<string, number>;
  readonly spans?: { readonly exported: number; readonly dropped: Record<string, number> };
  /** Added latency against this scenario's id (Envoy alone at the same rate). */
  readonly baselineId?: string;
  readonly addedUs?: { readonly p50: number; readonly p99: number };
  /** p50 and p99 of each round, when the scenario ran in several (µs). */
  readonly roundsLatencyUs?: { readonly p50: readonly number[]; readonly p99: readonly number[] };
  /** GC pauses and event-loop delay of genops-mesh during the scenario (its own /metrics). */
  readonly runtime?: RuntimeWindow | undefined;
  /** Redis during the scenario: commands per request (INFO commandstats) and its CPU. */
  readonly redis?: { readonly commandsPerRequest: number; readonly calls: Record<string, number>; readonly requests: number; readonly cpuPercent: number | undefined };
  /** Heap allocation per decision (Node: --trace-gc-nvp; Go: go_memstats_alloc_bytes_total). */
  readonly allocation?: { readonly bytesPerRequest: number; readonly promotedBytesPerRequest: number | undefined; readonly gcPausesPerSecond: number; readonly gcPauseMsPerSecond: number; readonly source: string };
}

export interface MemoryResult {
  readonly keys: number;
  readonly durationS: number;
  readonly throughputRps: number;
  readonly allowed: number;
  readonly failed: number;
  readonly rssIdleMb: number;
  readonly rssAfterMb: number;
  readonly rssPeakMb: number;
  /** RSS 30 s after the flood: the process at rest. */
  readonly rssSettledMb: number;
  readonly heapUsedMb: number;
  readonly cpuPercent: number;
}

export interface TargetResult {
  readonly target: string;
  readonly figure: string;
  readonly met: boolean | undefined;
}

export interface BenchReport {
  readonly meta: {
    readonly command: string;
    readonly startedAt: string;
    readonly finishedAt: string;
    readonly machine: Record<string, string | number>;
    readonly versions: Record<string, string>;
    readonly options: Record<string, unknown>;
  };
  readonly results: readonly ScenarioResult[];
  readonly memory?: MemoryResult | undefined;
  readonly targets: readonly TargetResult[];
}

/** Merges rounds of one scenario: throughput and latencies are the means of the rounds. */
export function mergeRounds(rounds: readonly ScenarioResult[]): ScenarioResult {
  const first = rounds[0]!;
  if (rounds.length === 1) return first;
  const mean = (pick: (result: ScenarioResult) => number) => round1(rounds.reduce((sum, result) => sum + pick(result), 0) / rounds.length);
  const sum = (pick: (result: ScenarioResult) => number) => rounds.reduce((total, result) => total + pick(result), 0);
  const keys = ['mean', 'p50', 'p90', 'p99', 'p999', 'max'] as const;
  const latencyUs = Object.fromEntries(keys.map((key) => [key, key === 'max' ? Math.max(...rounds.map((r) => r.load.latencyUs.max)) : mean((r) => r.load.latencyUs[key])])) as LoadResult['latencyUs'];
  const usage = (pick: (result: ScenarioResult) => ProcessUsage | undefined): ProcessUsage | undefined =>
    rounds.every((r) => pick(r))
      ? { cpuPercent: mean((r) => pick(r)!.cpuPercent), rssMb: pick(rounds.at(-1)!)!.rssMb, rssPeakMb: Math.max(...rounds.map((r) => pick(r)!.rssPeakMb)) }
      : undefined;
  const merged: ScenarioResult = {
    ...first,
    load: {
      ...first.load,
      durationS: sum((r) => r.load.durationS),
      requests: sum((r) => r.load.requests),
      ok: sum((r) => r.load.ok),
      denied: sum((r) => r.load.denied),
      failed: sum((r) => r.load.failed),
      throughputRps: mean((r) => r.load.throughputRps),
      latencyUs,
      ...(first.load.sendLagUs ? { sendLagUs: { p50: mean((r) => r.load.sendLagUs!.p50), p99: mean((r) => r.load.sendLagUs!.p99), max: Math.max(...rounds.map((r) => r.load.sendLagUs!.max)) } } : {}),
      curve: first.load.curve.map(([p], index) => [p, mean((r) => r.load.curve[index]?.[1] ?? 0)] as const),
    },
    roundsRps: rounds.map((r) => r.load.throughputRps),
    roundsLatencyUs: { p50: rounds.map((r) => r.load.latencyUs.p50), p99: rounds.map((r) => r.load.latencyUs.p99) },
    runtime: mergeRuntimeWindows(rounds.flatMap((r) => (r.runtime ? [r.runtime] : []))),
    usage: usage((r) => r.usage),
    envoyUsage: usage((r) => r.envoyUsage),
  };
  if (first.decisions) (merged as { decisions?: Record<string, number> }).decisions = sumRecords(rounds.map((r) => r.decisions ?? {}));
  if (first.redis) {
    const calls = sumRecords(rounds.map((r) => r.redis?.calls ?? {}));
    const requests = sum((r) => r.redis?.requests ?? 0);
    const cpu = rounds.every((r) => r.redis?.cpuPercent !== undefined) ? mean((r) => r.redis!.cpuPercent!) : undefined;
    (merged as { redis?: ScenarioResult['redis'] }).redis = { calls, requests, commandsPerRequest: requests > 0 ? round2(Object.values(calls).reduce((a, b) => a + b, 0) / requests) : 0, cpuPercent: cpu };
  }
  if (first.spans) (merged as { spans?: ScenarioResult['spans'] }).spans = { exported: sum((r) => r.spans?.exported ?? 0), dropped: sumRecords(rounds.map((r) => r.spans?.dropped ?? {})) };
  return merged;
}

function sumRecords(records: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const record of records) for (const [key, value] of Object.entries(record)) out[key] = (out[key] ?? 0) + value;
  return out;
}

/** Fills addedUs of every result that names a baseline present in `results`. */
export function withAddedLatency(results: readonly ScenarioResult[]): ScenarioResult[] {
  const byId = new Map(results.map((result) => [result.id, result]));
  return results.map((result) => {
    const baseline = result.baselineId ? byId.get(result.baselineId) : undefined;
    if (!baseline || baseline === result) return result;
    return { ...result, addedUs: { p50: round1(result.load.latencyUs.p50 - baseline.load.latencyUs.p50), p99: round1(result.load.latencyUs.p99 - baseline.load.latencyUs.p99) } };
  });
}

/** DESIGN §5 targets, each from figures of this run; `met` is undefined when the run lacks the scenarios. */
export function evaluateTargets(results: readonly ScenarioResult[], memory: MemoryResult | undefined, envoyRate: number): TargetResult[] {
  const byId = new Map(results.map((result) => [result.id, result]));
  const rps = (id: string) => byId.get(id)?.load.throughputRps;
  const targets: TargetResult[] = [];
  const ratio = (target: string, numeratorId: string, denominatorId: string, minimum: number) => {
    const numerator = rps(numeratorId);
    const denominator = rps(denominatorId);
    if (numerator === undefined || denominator === undefined) {
      targets.push({ target, figure: 'not measured in this run', met: undefined });
      return;
    }
    const value = numerator / denominator;
    const [numeratorCpu, denominatorCpu] = [numeratorId, denominatorId].map((id) => cpuPerRequestUs(byId.get(id)?.usage, rps(id)!));
    const cpu = numeratorCpu !== undefined && denominatorCpu !== undefined ? `; CPU per request ${numeratorCpu.toFixed(0)} vs ${denominatorCpu.toFixed(0)} µs` : '';
    targets.push({ target, figure: `${fmtInt(numerator)} / ${fmtInt(denominator)} req/s = **${value.toFixed(2)}** (≥ ${minimum})${cpu}`, met: value >= minimum });
  };
  ratio('Check throughput ≥ 0.7 × trivial grpc-js server (OTEL_SDK_DISABLED=true)', 'direct/service/check/closed', 'direct/trivial/check/closed', 0.7);
  ratio('Check throughput ≥ 0.7 × trivial, tracing on (every span exported)', 'traced/service/check/closed', 'direct/trivial/check/closed', 0.7);
  ratio('ext_proc headers-only stream ≥ 0.5 × Check throughput', 'direct/service/process/closed', 'direct/service/check/closed', 0.5);
  ratio('ext_proc ≥ 0.5 × Check, tracing on', 'traced/service/process/closed', 'traced/service/check/closed', 0.5);
  for (const [variant, label] of [
    ['ext-authz', 'ext_authz'],
    ['ext-proc', 'ext_proc'],
    ['ext-authz+traced', 'ext_authz, tracing on'],
    ['ext-proc+traced', 'ext_proc, tracing on'],
  ] as const) {
    const result = byId.get(`envoy/${variant}/open@${envoyRate}`);
    const floor = byId.get(`envoy/${variant.replace('+traced', '')}+trivial/open@${envoyRate}`)?.addedUs;
    const target = `Added p99 ≤ 1 ms through Envoy at ${fmtInt(envoyRate)} RPS open loop (${label})`;
    if (!result?.addedUs) targets.push({ target, figure: 'not measured in this run', met: undefined });
    else {
      const go = byId.get(`envoy/${variant.replace('+traced', '')}+go/open@${envoyRate}`)?.addedUs;
      const runtime =
        (floor ? `; the trivial grpc-js server behind the same filter adds p99 ${signedMs(floor.p99)}, p50 ${signedMs(floor.p50)}` : '') +
        (go ? `; a fixed-reply Go gRPC server adds p99 ${signedMs(go.p99)}, p50 ${signedMs(go.p50)}` : '');
      targets.push({ target, figure: `p99 **${signedMs(result.addedUs.p99)}**, p50 ${signedMs(result.addedUs.p50)} vs Envoy alone${runtime}`, met: result.addedUs.p99 <= 1000 });
    }
  }
  if (memory) {
    targets.push({
      target: `RSS < 150 MB with ${fmtInt(memory.keys)} distinct rate-limit keys`,
      figure: `**${memory.rssPeakMb.toFixed(0)} MB** peak (idle ${memory.rssIdleMb.toFixed(0)} MB, 5 s after the flood ${memory.rssAfterMb.toFixed(0)} MB, settled ${memory.rssSettledMb.toFixed(0)} MB; JS heap ${memory.heapUsedMb.toFixed(0)} MB)`,
      met: memory.rssPeakMb < 150 && memory.failed === 0,
    });
  } else {
    targets.push({ target: 'RSS < 150 MB with 1M distinct rate-limit keys', figure: 'not measured in this run', met: undefined });
  }
  return targets;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function fmtInt(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function ms(us: number): string {
  return (us / 1000).toFixed(2);
}

function signedMs(us: number): string {
  return `${us >= 0 ? '+' : '−'}${ms(Math.abs(us))} ms`;
}

/** CPU time the process spent per request, in µs: steadier than req/s when the machine is shared. */
export function cpuPerRequestUs(usage: ProcessUsage | undefined, throughputRps: number): number | undefined {
  return usage && throughputRps > 0 ? (usage.cpuPercent / 100 / throughputRps) * 1e6 : undefined;
}

function usageCell(usage: ProcessUsage | undefined, throughputRps: number): string {
  if (!usage) return '–';
  const perRequest = cpuPerRequestUs(usage, throughputRps);
  return `${usage.cpuPercent.toFixed(0)}%${perRequest === undefined ? '' : ` (${perRequest.toFixed(0)} µs/req)`} · ${usage.rssPeakMb.toFixed(0)} MB`;
}

function outcomes(result: ScenarioResult): string {
  const { load } = result;
  const parts = [`${fmtInt(load.ok)} ok`];
  if (load.denied) parts.push(`${fmtInt(load.denied)} denied`);
  if (load.failed) parts.push(`**${fmtInt(load.failed)} failed**`);
  if (result.decisions) {
    const other = Object.entries(result.decisions).filter(([decision]) => decision !== 'ALLOWED');
    if (other.length > 0) parts.push(`decisions: ${other.map(([decision, count]) => `${decision} ${fmtInt(count)}`).join(', ')}`);
  }
  if (result.spans) {
    const dropped = Object.values(result.spans.dropped).reduce((a, b) => a + b, 0);
    parts.push(`spans ${fmtInt(result.spans.exported)} exported${dropped ? `, ${fmtInt(dropped)} dropped` : ''}`);
  }
  return parts.join(', ');
}

/** The report as Markdown: one table per section, the memory figure, then the targets. */
export function renderMarkdown(report: BenchReport): string {
  const lines: string[] = [];
  const { meta } = report;
  lines.push(`Command: \`${meta.command}\`  `);
  lines.push(`Run: ${meta.startedAt} → ${meta.finishedAt}  `);
  lines.push(`Machine: ${Object.entries(meta.machine).map(([key, value]) => `${key} ${value}`).join(' · ')}  `);
  lines.push(`Versions: ${Object.entries(meta.versions).map(([key, value]) => `${key} ${value}`).join(' · ')}`);
  lines.push('');
  lines.push('### Targets (DESIGN §5)');
  lines.push('');
  lines.push('| target | this run | met |');
  lines.push('|---|---|---|');
  for (const target of report.targets) lines.push(`| ${target.target} | ${target.figure} | ${target.met === undefined ? '–' : target.met ? '✅ met' : '❌ not met'} |`);
  lines.push('');
  for (const [section, heading] of Object.entries(SECTIONS) as [Section, string][]) {
    const rows = report.results.filter((result) => result.section === section);
    if (rows.length === 0) continue;
    const open = rows.some((row) => row.load.mode === 'open');
    const envoy = section.startsWith('envoy');
    lines.push(`### ${heading}`);
    lines.push('');
    lines.push(
      `| scenario | ${open ? 'rate' : 'in flight'} | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms |${envoy ? ' added p50 / p99 vs Envoy alone |' : ''} service CPU (per request) · RSS |${envoy ? ' Envoy CPU |' : ''} outcome |`,
    );
    lines.push(`|---|---|---:|---:|---:|---:|---:|${envoy ? '---:|' : ''}---|${envoy ? '---:|' : ''}---|`);
    for (const row of rows) {
      const { load } = row;
      const loadCell = load.mode === 'open' ? `${fmtInt(load.targetRps ?? 0)}/s` : (load.inFlight ?? '');
      const rounds = row.roundsRps ? ` (${row.roundsRps.map(fmtInt).join(' / ')})` : '';
      const added = envoy ? ` ${row.addedUs ? `${signedMs(row.addedUs.p50)} / ${signedMs(row.addedUs.p99)}` : row.id.includes('/envoy-alone/') ? 'baseline' : '–'} |` : '';
      const envoyCpu = envoy ? ` ${row.envoyUsage ? `${row.envoyUsage.cpuPercent.toFixed(0)}%` : '–'} |` : '';
      lines.push(
        `| ${row.title} | ${loadCell} | ${fmtInt(load.throughputRps)}${rounds} | ${ms(load.latencyUs.p50)} | ${ms(load.latencyUs.p90)} | ${ms(load.latencyUs.p99)} | ${ms(load.latencyUs.p999)} |${added} ${usageCell(row.usage, load.throughputRps)} |${envoyCpu} ${outcomes(row)} |`,
      );
    }
    const lag = rows.filter((row) => row.load.sendLagUs);
    if (lag.length > 0) {
      const worst = Math.max(...lag.map((row) => row.load.sendLagUs!.p99));
      const median = lag.map((row) => row.load.sendLagUs!.p50).sort((a, b) => a - b)[Math.floor(lag.length / 2)]!;
      lines.push('');
      lines.push(`Generator send lag (included in the latencies, the same for every row): median p50 ${ms(median)} ms, worst p99 ${ms(worst)} ms.`);
    }
    lines.push('');
  }
  const memory = report.memory;
  if (memory) {
    lines.push(`### Memory: ${fmtInt(memory.keys)} distinct rate-limit keys`);
    lines.push('');
    lines.push('| keys | sent in | req/s | allowed | failed | RSS idle | RSS peak | RSS 5 s after | RSS settled (30 s) | JS heap used | CPU |');
    lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    lines.push(
      `| ${fmtInt(memory.keys)} | ${memory.durationS.toFixed(0)} s | ${fmtInt(memory.throughputRps)} | ${fmtInt(memory.allowed)} | ${fmtInt(memory.failed)} | ${memory.rssIdleMb.toFixed(0)} MB | ${memory.rssPeakMb.toFixed(0)} MB | ${memory.rssAfterMb.toFixed(0)} MB | ${memory.rssSettledMb.toFixed(0)} MB | ${memory.heapUsedMb.toFixed(0)} MB | ${memory.cpuPercent.toFixed(0)}% |`,
    );
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
