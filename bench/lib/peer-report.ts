/**
 * Issue 15's side-by-side table — genops-mesh, the OPA Envoy plugin,
 * envoyproxy/ratelimit and the trivial grpc-js server — and its targets,
 * each from figures of one run (bench/lib/peer-scenarios.ts).
 */
import { cpuPerRequestUs, type BenchReport, type ScenarioResult, type TargetResult } from './report.js';

const ids = (rate: number) => ({
  trivial: 'direct/trivial/check/closed',
  genops: 'direct/service+peers/check/closed',
  genopsBench: 'direct/service/check/closed',
  traced: 'traced/service/check/closed',
  opa: 'direct/opa-envoy/check/closed',
  envoyAlone: `envoy/envoy-alone/open@${rate}`,
  envoyAuthz: `envoy/ext-authz/open@${rate}`,
  envoyProc: `envoy/ext-proc/open@${rate}`,
  envoyOpa: `envoy/ext-authz+opa/open@${rate}`,
  ratelimit: 'limits/ratelimit/closed',
  genopsLimits: 'limits/service-redis/closed',
  trivialLimits: 'limits/trivial/closed',
  tailTrivial: 'tail/trivial/check/open@1000',
  tailGenops: 'tail/service/check/open@1000',
  tailOpa: 'tail/opa-envoy/check/open@1000',
});

/** Added latency of one Envoy scenario per round (its round i minus Envoy alone's round i), µs. */
export function addedPerRound(result: ScenarioResult | undefined, baseline: ScenarioResult | undefined): { p50: number[]; p99: number[] } | undefined {
  if (!result || !baseline) return undefined;
  const rounds = (r: ScenarioResult) => r.roundsLatencyUs ?? { p50: [r.load.latencyUs.p50], p99: [r.load.latencyUs.p99] };
  const [own, base] = [rounds(result), rounds(baseline)];
  const n = Math.min(own.p50.length, base.p50.length);
  const pick = (key: 'p50' | 'p99') => Array.from({ length: n }, (_, i) => own[key][i]! - base[key][i]!);
  return { p50: pick('p50'), p99: pick('p99') };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const spread = (values: readonly number[]) => Math.max(...values) - Math.min(...values);
const ms = (us: number) => `${us >= 0 ? '+' : '−'}${(Math.abs(us) / 1000).toFixed(2)} ms`;
const int = (value: number) => Math.round(value).toLocaleString('en-US');
const ratio = (value: number) => `**${value.toFixed(2)} ×**`;

export function evaluatePeerTargets(results: readonly ScenarioResult[], envoyRate: number): TargetResult[] {
  const byId = new Map(results.map((result) => [result.id, result]));
  const id = ids(envoyRate);
  const targets: TargetResult[] = [];
  const missing = (target: string) => targets.push({ target, figure: 'not measured in this run', met: undefined });

  const [genops, opa, trivial, traced] = [byId.get(id.genops), byId.get(id.opa), byId.get(id.trivial), byId.get(id.traced)];
  const throughputTarget = 'Direct Check ≥ 1.5 × OPA-Envoy throughput, equal policy';
  const cpuTarget = 'CPU per decision ≤ 0.5 × OPA-Envoy’s';
  if (genops && opa) {
    const value = genops.load.throughputRps / opa.load.throughputRps;
    targets.push({ target: throughputTarget, figure: `${int(genops.load.throughputRps)} / ${int(opa.load.throughputRps)} req/s = ${ratio(value)}`, met: value >= 1.5 });
    const [mine, theirs] = [cpuPerRequestUs(genops.usage, genops.load.throughputRps), cpuPerRequestUs(opa.usage, opa.load.throughputRps)];
    if (mine !== undefined && theirs !== undefined) targets.push({ target: cpuTarget, figure: `${mine.toFixed(0)} vs ${theirs.toFixed(0)} µs = ${ratio(mine / theirs)}`, met: mine / theirs <= 0.5 });
    else missing(cpuTarget);
  } else {
    missing(throughputTarget);
    missing(cpuTarget);
  }

  const opaAdded = addedPerRound(byId.get(id.envoyOpa), byId.get(id.envoyAlone));
  for (const [label, scenario] of [['ext_authz', id.envoyAuthz], ['ext_proc', id.envoyProc]] as const) {
    const target = `Through Envoy at ${int(envoyRate)}/s (${label}): added p50 and p99 ≤ 0.8 × OPA-Envoy’s (median of rounds), p99 spread ≤ OPA’s`;
    const added = addedPerRound(byId.get(scenario), byId.get(id.envoyAlone));
    if (!added || !opaAdded) {
      missing(target);
      continue;
    }
    const [p50, p99, opaP50, opaP99] = [median(added.p50), median(added.p99), median(opaAdded.p50), median(opaAdded.p99)];
    const [ownSpread, opaSpread] = [spread(added.p99), spread(opaAdded.p99)];
    const within = (value: number, reference: number) => reference > 0 && value <= 0.8 * reference;
    targets.push({
      target,
      figure: `p50 ${ms(p50)} vs ${ms(opaP50)}, p99 **${ms(p99)}** vs ${ms(opaP99)}; p99 over ${added.p99.length} rounds ${added.p99.map(ms).join(' / ')} (spread ${(ownSpread / 1000).toFixed(2)} ms) vs ${opaAdded.p99.map(ms).join(' / ')} (spread ${(opaSpread / 1000).toFixed(2)} ms)`,
      met: within(p50, opaP50) && within(p99, opaP99) && ownSpread <= opaSpread,
    });
  }

  const [ratelimit, limits] = [byId.get(id.ratelimit), byId.get(id.genopsLimits)];
  const limitsTarget = 'Shared limits ≥ 1.0 × envoyproxy/ratelimit throughput at no worse p99';
  if (ratelimit && limits) {
    const value = limits.load.throughputRps / ratelimit.load.throughputRps;
    targets.push({
      target: limitsTarget,
      figure: `${int(limits.load.throughputRps)} / ${int(ratelimit.load.throughputRps)} req/s = ${ratio(value)}; p99 ${(limits.load.latencyUs.p99 / 1000).toFixed(2)} vs ${(ratelimit.load.latencyUs.p99 / 1000).toFixed(2)} ms`,
      met: value >= 1 && limits.load.latencyUs.p99 <= ratelimit.load.latencyUs.p99,
    });
  } else missing(limitsTarget);

  const tracingTarget = 'Tracing on, every span exported: Check ≥ 0.6 × trivial';
  if (traced && trivial) {
    const value = traced.load.throughputRps / trivial.load.throughputRps;
    targets.push({ target: tracingTarget, figure: `${int(traced.load.throughputRps)} / ${int(trivial.load.throughputRps)} req/s = ${ratio(value)}`, met: value >= 0.6 });
  } else missing(tracingTarget);
  return targets;
}

/** The side-by-side table, then the tail figures. */
export function renderPeerMarkdown(report: BenchReport, envoyRate: number): string {
  const byId = new Map(report.results.map((result) => [result.id, result]));
  const id = ids(envoyRate);
  const get = (key: keyof ReturnType<typeof ids>) => byId.get(id[key]);
  if (!get('opa') && !get('envoyOpa') && !get('ratelimit') && !get('tailOpa')) return '';
  const lines: string[] = ['### Peers side by side (issue 15)', ''];
  const rps = (result: ScenarioResult | undefined) => (result ? int(result.load.throughputRps) : '–');
  const cpu = (result: ScenarioResult | undefined) => {
    const value = result ? cpuPerRequestUs(result.usage, result.load.throughputRps) : undefined;
    return value === undefined ? '–' : `${value.toFixed(0)} µs`;
  };
  const over = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b !== 0 ? `${(a / b).toFixed(2)} ×` : '–');
  const throughput = (result: ScenarioResult | undefined) => result?.load.throughputRps;
  const cpuOf = (result: ScenarioResult | undefined) => (result ? cpuPerRequestUs(result.usage, result.load.throughputRps) : undefined);

  lines.push('| figure | genops-mesh | OPA-Envoy | envoyproxy/ratelimit | trivial grpc-js | genops-mesh / peer | genops-mesh / trivial |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|');
  lines.push(`| direct Check, closed loop 4×16, req/s (equal policy) | ${rps(get('genops'))} | ${rps(get('opa'))} | – | ${rps(get('trivial'))} | ${over(throughput(get('genops')), throughput(get('opa')))} | ${over(throughput(get('genops')), throughput(get('trivial')))} |`);
  lines.push(`| CPU per decision (same rows) | ${cpu(get('genops'))} | ${cpu(get('opa'))} | – | ${cpu(get('trivial'))} | ${over(cpuOf(get('genops')), cpuOf(get('opa')))} | ${over(cpuOf(get('genops')), cpuOf(get('trivial')))} |`);
  lines.push(`| direct Check, tracing on (every span exported), req/s | ${rps(get('traced'))} | – | – | ${rps(get('trivial'))} | – | ${over(throughput(get('traced')), throughput(get('trivial')))} |`);
  const opaAdded = addedPerRound(get('envoyOpa'), get('envoyAlone'));
  for (const [label, key] of [['ext_authz', 'envoyAuthz'], ['ext_proc', 'envoyProc']] as const) {
    const added = addedPerRound(get(key), get('envoyAlone'));
    for (const percentile of ['p50', 'p99'] as const) {
      const [own, theirs] = [added ? median(added[percentile]) : undefined, opaAdded ? median(opaAdded[percentile]) : undefined];
      lines.push(`| through Envoy at ${int(envoyRate)}/s, added ${percentile} (median of rounds), genops-mesh ${label} vs OPA ext_authz | ${own === undefined ? '–' : ms(own)} | ${theirs === undefined ? '–' : ms(theirs)} | – | – | ${over(own, theirs)} | – |`);
    }
  }
  const [ratelimit, limits, floor] = [get('ratelimit'), get('genopsLimits'), get('trivialLimits')];
  const p99 = (result: ScenarioResult | undefined) => (result ? `${(result.load.latencyUs.p99 / 1000).toFixed(2)} ms` : '–');
  lines.push(`| shared limits on Redis through Envoy, closed loop 64 in flight, req/s (trivial: ext_authz → trivial server, no limit) | ${rps(limits)} | – | ${rps(ratelimit)} | ${rps(floor)} | ${over(throughput(limits), throughput(ratelimit))} | ${over(throughput(limits), throughput(floor))} |`);
  lines.push(`| shared limits, p99 | ${p99(limits)} | – | ${p99(ratelimit)} | ${p99(floor)} | ${over(limits?.load.latencyUs.p99, ratelimit?.load.latencyUs.p99)} | ${over(limits?.load.latencyUs.p99, floor?.load.latencyUs.p99)} |`);
  lines.push(`| shared limits, CPU per request of the service | ${cpu(limits)} | – | ${cpu(ratelimit)} | ${cpu(floor)} | ${over(cpuOf(limits), cpuOf(ratelimit))} | ${over(cpuOf(limits), cpuOf(floor))} |`);
  const redisCalls = (result: ScenarioResult | undefined) =>
    result?.redis ? `${result.redis.commandsPerRequest.toFixed(2)} (${Object.entries(result.redis.calls).map(([command, calls]) => `${command} ${(calls / Math.max(1, result.redis!.requests)).toFixed(2)}`).join(', ')})` : '–';
  lines.push(`| shared limits, Redis commands per request (INFO commandstats) | ${redisCalls(limits)} | – | ${redisCalls(ratelimit)} | – | – | – |`);
  lines.push(`| shared limits, Redis CPU | ${limits?.redis?.cpuPercent !== undefined ? `${limits.redis.cpuPercent.toFixed(0)}%` : '–'} | – | ${ratelimit?.redis?.cpuPercent !== undefined ? `${ratelimit.redis.cpuPercent.toFixed(0)}%` : '–'} | – | – | – |`);
  const allocation = (key: 'tailGenops' | 'tailOpa' | 'tailTrivial') => get(key)?.allocation;
  const bytes = (value: number | undefined) => (value === undefined ? '–' : `${(value / 1024).toFixed(1)} KiB`);
  const [ga, oa, ta] = [allocation('tailGenops'), allocation('tailOpa'), allocation('tailTrivial')];
  lines.push(`| heap allocated per decision (direct Check at 1,000/s) | ${bytes(ga?.bytesPerRequest)} | ${bytes(oa?.bytesPerRequest)} | – | ${bytes(ta?.bytesPerRequest)} | ${over(ga?.bytesPerRequest, oa?.bytesPerRequest)} | ${over(ga?.bytesPerRequest, ta?.bytesPerRequest)} |`);
  lines.push(`| promoted to the old generation per decision | ${bytes(ga?.promotedBytesPerRequest)} | n/a (Go: no generations) | – | ${bytes(ta?.promotedBytesPerRequest)} | – | ${over(ga?.promotedBytesPerRequest, ta?.promotedBytesPerRequest)} |`);
  const pauses = (value: { gcPausesPerSecond: number; gcPauseMsPerSecond: number } | undefined) => (value ? `${value.gcPausesPerSecond.toFixed(1)}/s, ${value.gcPauseMsPerSecond.toFixed(2)} ms/s` : '–');
  lines.push(`| GC pauses (count, time per second) | ${pauses(ga)} | ${pauses(oa)} (stop-the-world) | – | ${pauses(ta)} | – | – |`);
  lines.push('');

  const runtimeRows = report.results.filter((result) => result.runtime && (result.section === 'envoy-open' || result.section === 'direct-open' || result.section === 'tail'));
  if (runtimeRows.length > 0) {
    lines.push('#### genops-mesh runtime during the open-loop scenarios (its own /metrics: `genops_gc_pause_seconds`, `nodejs_eventloop_lag_*`)');
    lines.push('');
    lines.push('| scenario | rate | GC pauses: minor (count · total · p99 ≤) | major | incremental | time in GC | event-loop delay p50 / p99 / max |');
    lines.push('|---|---:|---|---|---|---:|---|');
    for (const row of runtimeRows) {
      const runtime = row.runtime!;
      const kind = (name: string) => {
        const figures = runtime.gc[name];
        return figures ? `${int(figures.count)} · ${figures.totalMs.toFixed(1)} ms · ${figures.p99AtMostMs === undefined ? '>1 s' : `${figures.p99AtMostMs} ms`}` : '–';
      };
      const loop = runtime.eventLoopDelayMs;
      lines.push(`| ${row.title} (${row.id}) | ${int(row.load.targetRps ?? row.load.throughputRps)}/s | ${kind('minor')} | ${kind('major')} | ${kind('incremental')} | ${runtime.gcPausePercent.toFixed(2)}% | ${loop.p50.toFixed(2)} / ${loop.p99.toFixed(2)} / ${loop.max.toFixed(2)} ms |`);
    }
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
