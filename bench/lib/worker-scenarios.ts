/**
 * GENOPS_WORKERS scenarios (issue 19), with one worker and with N, all on the same real Redis
 * (more than one worker needs it), measured in interleaved rounds of one run:
 * - workers/<n>/check/closed: direct Check, h2load 4 connections × 16 streams;
 * - workers/<n>/envoy-ext-proc/closed: the AI exchange through Envoy (deploy/envoy/ext-proc.yaml,
 *   `--concurrency 2`, so two connections to the service) to the bench's Go upstream.
 * `npm run bench -- --scenario workers/`. CPU and RSS are the sum over the primary and its workers.
 */
import { join } from 'node:path';
import { startEnvoy, type RunningEnvoy } from '../../src/demo/start-envoy.js';
import { startService, type RunningService } from '../../src/demo/start-service.js';
import { writeEnvoyTemplate } from './envoy-configs.js';
import type { Fixtures } from './fixtures.js';
import { startRedis, type RunningRedis } from '../../test/support/start-redis.js';
import { encodeCheck } from './identity-scenarios.js';
import { runH2load } from './load-tools.js';
import { sampleUsage, type ProcessUsage } from './process-stats.js';
import type { ScenarioResult } from './report.js';
import { delta, readCounters } from './service-metrics.js';
import { mkdirSync, writeFileSync } from 'node:fs';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];

export interface WorkerStep {
  readonly id: string;
  readonly section: 'direct-closed';
  readonly title: string;
  readonly expectedS: number;
  prepare(fixtures: Fixtures): Promise<unknown>;
  run(context: { fixtures: Fixtures }): Promise<ScenarioResult>;
}

export interface WorkerStepOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly workDir: string;
  readonly policyPath: string;
  readonly workers: readonly number[];
  /** The AI request h2load sends through Envoy: body file and headers. */
  readonly httpBody: string;
  readonly httpHeaders: readonly string[];
}

export function workerSteps(options: WorkerStepOptions): { steps: WorkerStep[]; stopAll(): Promise<void> } {
  const dir = join(options.workDir, 'workers');
  let redis: Promise<RunningRedis> | undefined;
  const services = new Map<number, Promise<RunningService>>();
  const body = () => {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'check.bin');
    writeFileSync(path, encodeCheck(false));
    return path;
  };

  const service = (workers: number) => {
    let started = services.get(workers);
    if (!started) {
      started = (async () => {
        redis ??= startRedis();
        const store = await redis;
        return startService({ policyPath: options.policyPath, env: { LOG_LEVEL: 'info', GENOPS_REDIS_URL: store.url, GENOPS_WORKERS: String(workers) }, readyTimeoutMs: 30_000 });
      })();
      services.set(workers, started);
    }
    return started;
  };

  const step = (workers: number): WorkerStep => ({
    id: `workers/${workers}/check/closed`,
    section: 'direct-closed',
    title: `genops-mesh Check, GENOPS_WORKERS=${workers}, limits on Redis (h2load: 4 connections × 16 streams)`,
    expectedS: options.durationS + options.warmupS + 1,
    prepare: () => service(workers),
    async run() {
      const running = await service(workers);
      const before = await readCounters(running.adminUrl);
      const samplers = servicePids(running).map((pid) => sampleUsage(pid));
      const load = await runH2load({ url: `http://127.0.0.1:${running.grpcPort}${CHECK_PATH}`, connections: 4, streams: 16, durationS: options.durationS, warmupS: options.warmupS, bodyFile: body(), headers: GRPC_HEADERS, logFile: join(dir, 'h2load.log') });
      const usage = sumUsage(samplers.map((sampler) => sampler.stop()));
      const after = await readCounters(running.adminUrl);
      return { id: this.id, section: 'direct-closed', title: this.title, load, usage, decisions: delta(after.decisions, before.decisions) };
    },
  });

  const envoys = new Map<number, Promise<RunningEnvoy>>();
  const envoy = (workers: number, fixtures: Fixtures) => {
    let started = envoys.get(workers);
    if (!started) {
      started = (async () => {
        const [running, upstream] = [await service(workers), await fixtures.upstream()];
        return startEnvoy({ config: writeEnvoyTemplate('ext-proc', dir), vars: { GENOPS_HOST: running.host, GENOPS_PORT: running.grpcPort, UPSTREAM_PORT: upstream.port }, concurrency: 2 });
      })();
      envoys.set(workers, started);
    }
    return started;
  };

  const throughEnvoy = (workers: number): WorkerStep => ({
    id: `workers/${workers}/envoy-ext-proc/closed`,
    section: 'direct-closed',
    title: `AI exchange through Envoy --concurrency 2 + ext_proc, GENOPS_WORKERS=${workers} (h2load: 4 connections × 16 streams)`,
    expectedS: options.durationS + options.warmupS + 1,
    prepare: (fixtures) => envoy(workers, fixtures),
    async run(context) {
      const running = await service(workers);
      const proxy = await envoy(workers, context.fixtures);
      const before = await readCounters(running.adminUrl);
      const samplers = servicePids(running).map((pid) => sampleUsage(pid));
      const envoyUsage = sampleUsage(proxy.process.pid);
      const load = await runH2load({ url: `${proxy.url}/v1/chat/completions`, connections: 4, streams: 16, durationS: options.durationS, warmupS: options.warmupS, bodyFile: options.httpBody, headers: options.httpHeaders, logFile: join(dir, 'h2load.log') });
      const usage = sumUsage(samplers.map((sampler) => sampler.stop()));
      const after = await readCounters(running.adminUrl);
      return { id: this.id, section: 'direct-closed', title: this.title, load, usage, envoyUsage: envoyUsage.stop(), decisions: delta(after.decisions, before.decisions) };
    },
  });

  return {
    steps: [...options.workers.map(step), ...options.workers.map(throughEnvoy)],
    async stopAll() {
      for (const started of envoys.values()) await (await started.catch(() => undefined))?.stop().catch(() => undefined);
      envoys.clear();
      for (const started of services.values()) await (await started.catch(() => undefined))?.stop({ timeoutMs: 15_000 }).catch(() => undefined);
      services.clear();
      await (await redis?.catch(() => undefined))?.stop();
      redis = undefined;
    },
  };
}

/** The service's process and, with workers, each worker's (from their `listening` log lines). */
function servicePids(running: RunningService): number[] {
  return [...new Set([running.process.pid, ...running.logs().filter((line) => line.event === 'listening').map((line) => Number(line.pid))])];
}

function sumUsage(usages: readonly (ProcessUsage | undefined)[]): ProcessUsage | undefined {
  const present = usages.filter((usage): usage is ProcessUsage => usage !== undefined);
  if (present.length === 0) return undefined;
  const round1 = (value: number) => Math.round(value * 10) / 10;
  return {
    cpuPercent: round1(present.reduce((sum, usage) => sum + usage.cpuPercent, 0)),
    rssMb: round1(present.reduce((sum, usage) => sum + usage.rssMb, 0)),
    rssPeakMb: round1(present.reduce((sum, usage) => sum + usage.rssPeakMb, 0)),
  };
}
