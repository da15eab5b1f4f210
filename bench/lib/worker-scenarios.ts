/**
 * GENOPS_WORKERS scenarios (issue 19): direct Check, closed loop, with one worker and with two,
 * both on the same real Redis (two workers need it), measured back to back in one run.
 * `npm run bench -- --scenario workers/`. CPU and RSS are the sum over the primary and its workers.
 */
import { join } from 'node:path';
import { startService, type RunningService } from '../../src/demo/start-service.js';
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
  prepare(): Promise<unknown>;
  run(): Promise<ScenarioResult>;
}

export function workerSteps(options: { durationS: number; warmupS: number; workDir: string; policyPath: string; workers: readonly number[] }): { steps: WorkerStep[]; stopAll(): Promise<void> } {
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
      const pids = [running.process.pid, ...running.logs().filter((line) => line.event === 'listening').map((line) => Number(line.pid))];
      const before = await readCounters(running.adminUrl);
      const samplers = [...new Set(pids)].map((pid) => sampleUsage(pid));
      const load = await runH2load({ url: `http://127.0.0.1:${running.grpcPort}${CHECK_PATH}`, connections: 4, streams: 16, durationS: options.durationS, warmupS: options.warmupS, bodyFile: body(), headers: GRPC_HEADERS, logFile: join(dir, 'h2load.log') });
      const usage = sumUsage(samplers.map((sampler) => sampler.stop()));
      const after = await readCounters(running.adminUrl);
      return { id: this.id, section: 'direct-closed', title: this.title, load, usage, decisions: delta(after.decisions, before.decisions) };
    },
  });

  return {
    steps: options.workers.map(step),
    async stopAll() {
      for (const started of services.values()) await (await started.catch(() => undefined))?.stop({ timeoutMs: 15_000 }).catch(() => undefined);
      services.clear();
      await (await redis?.catch(() => undefined))?.stop();
      redis = undefined;
    },
  };
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
