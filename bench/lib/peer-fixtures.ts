import { join } from 'node:path';
import { REPO_ROOT } from '../../src/demo/repo-root.js';
import { startEnvoy, type RunningEnvoy } from '../../src/demo/start-envoy.js';
import { startService, type RunningService } from '../../src/demo/start-service.js';
import { startRedis, type RunningRedis } from '../../test/support/start-redis.js';
import { writeEnvoyTemplate } from './envoy-configs.js';
import type { Fixtures } from './fixtures.js';
import { writeRatelimitEnvoyTemplate } from './peer-envoy-configs.js';
import { startOpaEnvoy, startRatelimit, type RunningPeer } from './peer-processes.js';

/** genops-mesh's side of the peer comparisons: the policy equal to OPA's, and the same with Redis limits. */
export type PeerPolicy = 'peers' | 'peers-limits';
const POLICY_FILES: Record<PeerPolicy, string> = {
  peers: join(REPO_ROOT, 'bench/policy-peers.yaml'),
  'peers-limits': join(REPO_ROOT, 'bench/policy-peers-limits.yaml'),
};

export interface PeerFixtures {
  /** The OPA Envoy plugin with bench/opa/policy.rego. */
  opa(): Promise<RunningPeer>;
  redis(): Promise<RunningRedis>;
  /** envoyproxy/ratelimit on redis(). */
  ratelimit(): Promise<RunningPeer>;
  /** genops-mesh with a peer policy (peers-limits: its buckets in redis()). */
  service(policy: PeerPolicy, instance: string): Promise<RunningService>;
  /** Envoy (one worker) with deploy/envoy/ext-authz.yaml calling the OPA Envoy plugin. */
  envoyOpa(): Promise<RunningEnvoy>;
  /** Envoy with its ratelimit filter calling envoyproxy/ratelimit. */
  envoyRatelimit(): Promise<RunningEnvoy>;
  /** Envoy with deploy/envoy/ext-authz.yaml calling genops-mesh with Redis limits. */
  envoyServiceLimits(): Promise<RunningEnvoy>;
  /** The trivial grpc-js server the Envoy variants share, and an ext_authz Envoy of its own calling it. */
  trivial(): Promise<{ grpcPort: number; process: { pid: number } }>;
  envoyTrivial(): Promise<RunningEnvoy>;
}

/**
 * The peers (DESIGN §4) and what they are compared against, started on
 * first use through `fixtures` (so one stopAll() ends everything) on free
 * loopback ports. Every process is started the same way as genops-mesh: a
 * child of the harness with its CPU affinity (all cores) and nice value;
 * the report reads both from /proc for each.
 */
export function createPeerFixtures(fixtures: Fixtures, options: { workDir: string; serviceNodeOptions: string }): PeerFixtures {
  const note = (message: string) => fixtures.note(message);
  const envoyCalling = (name: string, template: () => string, backend: () => Promise<{ grpcPort: number }>) =>
    fixtures.shared(
      `envoy:peer:${name}`,
      async () => {
        note(`starting Envoy: ${name}`);
        const [upstream, server] = [await fixtures.upstream(), await backend()];
        return startEnvoy({ config: template(), vars: { UPSTREAM_PORT: upstream.port, GENOPS_HOST: '127.0.0.1', GENOPS_PORT: server.grpcPort } });
      },
      (envoy) => envoy.stop().catch(() => undefined),
    );
  const peers: PeerFixtures = {
    opa: () =>
      fixtures.shared(
        'peer:opa',
        () => {
          note('starting the OPA Envoy plugin (bench/opa/policy.rego)');
          return startOpaEnvoy();
        },
        (peer) => peer.stop(),
      ),
    redis: () =>
      fixtures.shared(
        'peer:redis',
        () => {
          note('starting redis-server');
          return startRedis();
        },
        (redis) => redis.stop().catch(() => undefined),
      ),
    ratelimit: () =>
      fixtures.shared(
        'peer:ratelimit',
        async () => {
          const redis = await peers.redis();
          note('starting envoyproxy/ratelimit (bench/envoy/ratelimit-config.yaml) on Redis');
          return startRatelimit({ redisAddress: `127.0.0.1:${redis.port}` });
        },
        (peer) => peer.stop(),
      ),
    service: (policy, instance) =>
      fixtures.shared(
        `service:${policy}:${instance}`,
        async () => {
          const env: Record<string, string> = { LOG_LEVEL: 'info', NODE_OPTIONS: options.serviceNodeOptions };
          if (policy === 'peers-limits') env.GENOPS_REDIS_URL = (await peers.redis()).url;
          note(`starting genops-mesh for ${instance} (bench/${policy === 'peers' ? 'policy-peers.yaml' : 'policy-peers-limits.yaml, buckets in Redis'})`);
          return startService({ policyPath: POLICY_FILES[policy], env });
        },
        (service) => service.stop({ timeoutMs: 15_000 }).catch(() => undefined),
      ),
    envoyOpa: () => envoyCalling('ext_authz → OPA Envoy plugin', () => writeEnvoyTemplate('ext-authz', options.workDir), () => peers.opa()),
    envoyRatelimit: () => envoyCalling('ratelimit filter → envoyproxy/ratelimit', () => writeRatelimitEnvoyTemplate(options.workDir), () => peers.ratelimit()),
    envoyServiceLimits: () => envoyCalling('ext_authz → genops-mesh with Redis limits', () => writeEnvoyTemplate('ext-authz', options.workDir), () => peers.service('peers-limits', 'envoy-limits')),
    trivial: async () => {
      const server = await fixtures.trivial('envoy');
      return { grpcPort: server.port, process: server.process };
    },
    envoyTrivial: () => envoyCalling('ext_authz → trivial grpc-js server (shared limits floor)', () => writeEnvoyTemplate('ext-authz', options.workDir), () => peers.trivial()),
  };
  return peers;
}
