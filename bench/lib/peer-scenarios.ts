/**
 * The peer scenarios of issue 15: genops-mesh against what users would run
 * instead — the OPA Envoy plugin for authorization, envoyproxy/ratelimit for
 * shared limits — under the same load, in the same run, and the allocation
 * figures that explain the tail. bench/run.ts puts these steps into its
 * groups; peer-report.ts turns the results into the side-by-side table.
 */
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/demo/repo-root.js';
import { SERVICE_NODE_FLAGS } from '../../src/server/service-node-flags.js';
import { startService, type RunningService } from '../../src/demo/start-service.js';
import { startPortServer, type PortServer } from './fixtures.js';
import type { LoadResult } from './load-tools.js';
import { createPeerFixtures, type PeerFixtures } from './peer-fixtures.js';
import { startOpaEnvoy, type RunningPeer } from './peer-processes.js';
import { sampleUsage } from './process-stats.js';
import type { ScenarioResult } from './report.js';
import type { Step, StepContext } from './step.js';

export interface PeerStepTools {
  readonly durationS: number;
  readonly warmupS: number;
  readonly envoyRate: number;
  readonly nodeOptions: string;
  readonly checkBody: string;
  readonly workDir: string;
  measure(step: Pick<ScenarioResult, 'id' | 'section' | 'title' | 'baselineId'>, target: { pid: number; adminUrl?: string; envoyPid?: number }, load: () => Promise<LoadResult>): Promise<ScenarioResult>;
  h2load(url: string, bodyFile: string, headers: readonly string[], context: StepContext): Promise<LoadResult>;
  loadgen(args: string[], context: StepContext): Promise<LoadResult>;
}

export interface PeerSteps {
  /** Direct Check, closed loop: run in the rounds of the trivial server's and genops-mesh's. */
  readonly direct: Step[];
  /** Through Envoy at the open-loop rate: run in the rounds of Envoy alone and genops-mesh's filters. */
  readonly envoyOpen: Step[];
  /** Shared limits on Redis, interleaved in rounds of their own. */
  readonly sharedLimits: Step[];
  /** Allocation per decision, each server fresh; once. */
  readonly tail: Step[];
}

const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
/** Shared-limit load: 64 requests in flight over 10,000 customer ids, so each stays under 100/min and every request costs a Redis round trip. */
const LIMITS_CONCURRENCY = 64;
const LIMITS_KEYS = 10_000;
const TAIL_RATE = 1000;

export function buildPeerSteps(tools: PeerStepTools): PeerSteps {
  const measured = tools.durationS + tools.warmupS + 1;
  const peersOf = (context: StepContext): PeerFixtures => notePeers(context.fixtures);
  const notePeers = (fixtures: StepContext['fixtures']) => createPeerFixtures(fixtures, { workDir: tools.workDir, serviceNodeOptions: tools.nodeOptions });

  const direct: Step[] = [
    {
      id: 'direct/opa-envoy/check/closed',
      section: 'direct-closed',
      title: 'OPA Envoy plugin Check (bench/opa/policy.rego)',
      expectedS: measured,
      prepare: (fixtures) => notePeers(fixtures).opa(),
      async run(context) {
        const opa = await peersOf(context).opa();
        return tools.measure({ id: this.id, section: this.section, title: this.title }, { pid: opa.process.pid }, () =>
          tools.h2load(`http://127.0.0.1:${opa.grpcPort}${CHECK_PATH}`, tools.checkBody, GRPC_HEADERS, context),
        );
      },
    },
    {
      id: 'direct/service+peers/check/closed',
      section: 'direct-closed',
      title: 'genops-mesh Check (bench/policy-peers.yaml: the policy OPA gets)',
      expectedS: measured,
      prepare: (fixtures) => notePeers(fixtures).service('peers', 'closed-loop'),
      async run(context) {
        const service = await peersOf(context).service('peers', 'closed-loop');
        return tools.measure({ id: this.id, section: this.section, title: this.title }, { pid: service.process.pid, adminUrl: service.adminUrl }, () =>
          tools.h2load(`http://127.0.0.1:${service.grpcPort}${CHECK_PATH}`, tools.checkBody, GRPC_HEADERS, context),
        );
      },
    },
  ];

  const envoyOpen: Step[] = [
    {
      id: `envoy/ext-authz+opa/open@${tools.envoyRate}`,
      section: 'envoy-open',
      title: 'Envoy + ext_authz (OPA Envoy plugin)',
      expectedS: measured,
      prepare: (fixtures) => notePeers(fixtures).envoyOpa(),
      async run(context) {
        const peers = peersOf(context);
        const [envoy, opa] = [await peers.envoyOpa(), await peers.opa()];
        return tools.measure(
          { id: this.id, section: this.section, title: this.title, baselineId: `envoy/envoy-alone/open@${tools.envoyRate}` },
          { pid: opa.process.pid, envoyPid: envoy.process.pid },
          () => tools.loadgen(['http', '-url', `${envoy.url}/v1/chat/completions`, '-rate', String(tools.envoyRate), '-name', this.id], context),
        );
      },
    },
  ];

  const limitsStep = (id: string, title: string, start: (peers: PeerFixtures) => Promise<{ envoyUrl: string; envoyAdmin: string; envoyPid: number; pid: number; adminUrl?: string }>): Step => ({
    id,
    section: 'shared-limits',
    title,
    expectedS: measured,
    prepare: (fixtures) => start(notePeers(fixtures)),
    async run(context) {
      const peers = peersOf(context);
      const target = await start(peers);
      const redis = await peers.redis();
      const client = redis.client();
      await client.config('RESETSTAT');
      const requestsBefore = await envoyDownstreamRequests(target.envoyAdmin);
      const redisUsage = sampleUsage(redis.process.pid);
      const result = await tools.measure({ id: this.id, section: this.section, title: this.title }, target.adminUrl ? { pid: target.pid, adminUrl: target.adminUrl, envoyPid: target.envoyPid } : { pid: target.pid, envoyPid: target.envoyPid }, () =>
        tools.loadgen(['http', '-url', `${target.envoyUrl}/v1/chat/completions`, '-concurrency', String(LIMITS_CONCURRENCY), '-keys', String(LIMITS_KEYS), '-customer-prefix', `${id.split('/')[1]}-`, '-name', id], context),
      );
      const redisCpu = redisUsage.stop()?.cpuPercent;
      const calls = parseCommandStats(await client.info('commandstats'));
      const requests = (await envoyDownstreamRequests(target.envoyAdmin)) - requestsBefore;
      const total = Object.values(calls).reduce((a, b) => a + b, 0);
      return { ...result, redis: { calls, requests, commandsPerRequest: requests > 0 ? Math.round((total / requests) * 100) / 100 : 0, cpuPercent: redisCpu } };
    },
  });
  const sharedLimits: Step[] = [
    limitsStep('limits/ratelimit/closed', 'Envoy + ratelimit filter → envoyproxy/ratelimit → Redis (100/min per customer)', async (peers) => {
      const [envoy, ratelimit] = [await peers.envoyRatelimit(), await peers.ratelimit()];
      return { envoyUrl: envoy.url, envoyAdmin: envoy.adminUrl, envoyPid: envoy.process.pid, pid: ratelimit.process.pid };
    }),
    limitsStep('limits/service-redis/closed', 'Envoy + ext_authz → genops-mesh → Redis (bench/policy-peers-limits.yaml, 100/min per customer)', async (peers) => {
      const [envoy, service] = [await peers.envoyServiceLimits(), await peers.service('peers-limits', 'envoy-limits')];
      return { envoyUrl: envoy.url, envoyAdmin: envoy.adminUrl, envoyPid: envoy.process.pid, pid: service.process.pid, adminUrl: service.adminUrl };
    }),
    // The floor of this load for any Node service behind ext_authz: the trivial grpc-js server, no Redis.
    limitsStep('limits/trivial/closed', 'Envoy + ext_authz → trivial grpc-js server (no limit: the Node floor of this load)', async (peers) => {
      const [envoy, trivial] = [await peers.envoyTrivial(), await peers.trivial()];
      return { envoyUrl: envoy.url, envoyAdmin: envoy.adminUrl, envoyPid: envoy.process.pid, pid: trivial.process.pid };
    }),
  ];

  /** One fresh server per run, its allocations read over the measured part of a direct open-loop Check load. */
  const tailStep = (id: string, title: string, start: () => Promise<AllocationProbe>): Step => ({
    id,
    section: 'tail',
    title,
    expectedS: measured + 2,
    prepare: async () => undefined,
    async run(context) {
      const probe = await start();
      try {
        let atWarmupEnd: Promise<AllocationMark> | undefined;
        const timer = setTimeout(() => {
          atWarmupEnd = probe.mark();
        }, tools.warmupS * 1000);
        const result = await tools.measure({ id: this.id, section: this.section, title: this.title }, { pid: probe.pid, ...(probe.adminUrl ? { adminUrl: probe.adminUrl } : {}) }, () =>
          tools.loadgen(['grpc', '-addr', `127.0.0.1:${probe.grpcPort}`, '-kind', 'check', '-conns', '4', '-rate', String(TAIL_RATE), '-name', id], context),
        );
        clearTimeout(timer);
        const end = await probe.mark();
        const start = await (atWarmupEnd ?? Promise.resolve(end));
        const requests = Math.max(1, result.load.requests);
        const seconds = Math.max(0.001, (end.atMs - start.atMs) / 1000);
        return {
          ...result,
          allocation: {
            bytesPerRequest: Math.round((end.allocatedBytes - start.allocatedBytes) / requests),
            promotedBytesPerRequest: end.promotedBytes === undefined || start.promotedBytes === undefined ? undefined : Math.round((end.promotedBytes - start.promotedBytes) / requests),
            gcPausesPerSecond: Math.round(((end.gcPauses - start.gcPauses) / seconds) * 10) / 10,
            gcPauseMsPerSecond: Math.round(((end.gcPauseMs - start.gcPauseMs) / seconds) * 100) / 100,
            source: probe.source,
          },
        };
      } finally {
        await probe.stop();
      }
    },
  });
  const tail: Step[] = [
    // With the service's own V8 flags, so that GC counts compare young generations of one size.
    tailStep(`tail/trivial/check/open@${TAIL_RATE}`, `trivial grpc-js server (${SERVICE_NODE_FLAGS.join(' ')})`, async () =>
      nodeProbe(await startPortServer('trivial-server', process.execPath, [...SERVICE_NODE_FLAGS, '--trace-gc-nvp', '--import', join(REPO_ROOT, 'bench/register-ts.mjs'), join(REPO_ROOT, 'bench/trivial-server.ts')])),
    ),
    tailStep(`tail/service/check/open@${TAIL_RATE}`, 'genops-mesh (bench/policy.yaml)', async () =>
      nodeProbe(await startService({ policyPath: join(REPO_ROOT, 'bench/policy.yaml'), nodeFlags: ['--trace-gc-nvp'], env: { LOG_LEVEL: 'info', NODE_OPTIONS: tools.nodeOptions } })),
    ),
    tailStep(`tail/opa-envoy/check/open@${TAIL_RATE}`, 'OPA Envoy plugin', async () => goProbe(await startOpaEnvoy())),
  ];
  return { direct, envoyOpen, sharedLimits, tail };
}

interface AllocationMark {
  readonly atMs: number;
  readonly allocatedBytes: number;
  /** Node: bytes scavenges promoted to the old generation. Go's collector has no generations. */
  readonly promotedBytes: number | undefined;
  readonly gcPauses: number;
  readonly gcPauseMs: number;
}

interface AllocationProbe {
  readonly pid: number;
  readonly grpcPort: number;
  readonly adminUrl: string | undefined;
  readonly source: string;
  mark(): Promise<AllocationMark>;
  stop(): Promise<void>;
}

/**
 * A Node server started with --trace-gc-nvp: each GC prints a line with its
 * pause, its kind (gc=s scavenge, ms/mc mark-sweep/compact), `allocated`
 * (bytes allocated since the previous GC) and, for a scavenge, `promoted`.
 */
function nodeProbe(server: PortServer | RunningService): AllocationProbe {
  const lines = server.process.stdoutLines;
  const mark = async (): Promise<AllocationMark> => {
    let allocatedBytes = 0;
    let promotedBytes = 0;
    let gcPauses = 0;
    let gcPauseMs = 0;
    for (const line of lines) {
      if (!line.includes(' pause=')) continue;
      const field = (name: string) => Number(new RegExp(` ${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
      allocatedBytes += field('allocated');
      promotedBytes += field('promoted');
      gcPauseMs += field('pause');
      gcPauses++;
    }
    return { atMs: performance.now(), allocatedBytes, promotedBytes, gcPauses, gcPauseMs };
  };
  const isService = 'adminUrl' in server;
  return {
    pid: server.process.pid,
    grpcPort: isService ? server.grpcPort : server.port,
    adminUrl: isService ? server.adminUrl : undefined,
    source: 'node --trace-gc-nvp (allocated, promoted, pause of every GC)',
    mark,
    stop: async () => void (isService ? await server.stop({ timeoutMs: 15_000 }).catch(() => undefined) : await server.stop()),
  };
}

/** The OPA Envoy plugin's Go runtime metrics: go_memstats_alloc_bytes_total and go_gc_duration_seconds (stop-the-world pauses). */
function goProbe(peer: RunningPeer): AllocationProbe {
  return {
    pid: peer.process.pid,
    grpcPort: peer.grpcPort,
    adminUrl: undefined,
    source: 'Go runtime metrics on /metrics (go_memstats_alloc_bytes_total, go_gc_duration_seconds)',
    async mark() {
      const text = await (await fetch(peer.metricsUrl!)).text();
      const value = (name: string) => Number(new RegExp(`^${name} ([^\\s]+)$`, 'm').exec(text)?.[1] ?? 0);
      return { atMs: performance.now(), allocatedBytes: value('go_memstats_alloc_bytes_total'), promotedBytes: undefined, gcPauses: value('go_gc_duration_seconds_count'), gcPauseMs: value('go_gc_duration_seconds_sum') * 1000 };
    },
    stop: () => peer.stop(),
  };
}

async function envoyDownstreamRequests(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/stats?filter=^http\\.ai_ingress\\.downstream_rq_total$`)).text();
  return Number(/: (\d+)/.exec(text)?.[1] ?? 0);
}

/** INFO commandstats → calls per command (cmdstat_evalsha:calls=12,... → { evalsha: 12 }). */
export function parseCommandStats(info: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const command = match[1]!;
    // The bench's own CONFIG RESETSTAT and INFO, and the clients' health-check PINGs, are no request's.
    if (command.startsWith('config') || command === 'info' || command === 'ping') continue;
    calls[command] = Number(match[2]);
  }
  return calls;
}
