import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { freePort } from '../../src/demo/free-port.js';
import { spawnManaged, type ManagedProcess } from '../../src/demo/managed-process.js';
import type { RedisTarget } from '../../src/limits/redis-connection.js';

const run = promisify(execFile);

export interface ClusterNode {
  readonly port: number;
  readonly process: ManagedProcess;
  /** A plain client to this one node, the same each call (closed by stop()). */
  client(): Redis;
}

export interface RunningRedisCluster {
  /** GENOPS_REDIS_URL for the service: redis+cluster:// with every node as a seed. */
  readonly url: string;
  readonly target: RedisTarget;
  readonly nodes: readonly ClusterNode[];
  /** The node currently serving `key`'s slot as primary (asked of a live node). */
  primaryOf(key: string): Promise<ClusterNode>;
  /** The nodes that are primaries now. */
  primaries(): Promise<ClusterNode[]>;
  /** Waits until every live node reports cluster_state:ok and all 16384 slots served, and every replica is in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A port whose cluster bus port (+10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port > 55_000 || taken.has(port) || taken.has(port + 10_000)) continue;
    const busFree = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port + 10_000, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (busFree) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair (port and port + 10000) for a cluster node');
}

export interface ClusterSecurity {
  /** requirepass and masterauth of every node (the default user). */
  readonly password?: string;
  /** TLS on every client, replication and cluster-bus port (no plaintext port), with these PEM files. */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
}

function nodeClientOptions(security: ClusterSecurity) {
  return {
    host: '127.0.0.1',
    ...(security.password ? { password: security.password } : {}),
    ...(security.tls ? { tls: { ca: readFileSync(security.tls.ca) } } : {}),
  };
}

async function ping(port: number, security: ClusterSecurity): Promise<boolean> {
  const probe = new Redis({ ...nodeClientOptions(security), port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/**
 * A real Redis Cluster from Debian's redis-server: 3 primaries and 3 replicas
 * on loopback, created with `redis-cli --cluster create --cluster-replicas 1`,
 * and Redis's own 15 s node timeout unless a test that kills a primary asks for a small one (a
 * 1 s timeout on a loaded 2-core machine lets a slow node be failed over in the middle of a
 * suite that never meant to). No persistence; each node in its own temporary directory.
 */
export async function startRedisCluster(options: { nodeTimeoutMs?: number } & ClusterSecurity = {}): Promise<RunningRedisCluster> {
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 15_000;
  const { password, tls } = options;
  const securityArgs = (port: number) => [
    ...(password ? ['--requirepass', password, '--masterauth', password] : []),
    ...(tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-cluster', 'yes', '--tls-replication', 'yes', '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
  ];
  const cliArgs = [...(password ? ['-a', password, '--no-auth-warning'] : []), ...(tls ? ['--tls', '--cacert', tls.ca] : [])];
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let index = 0; index < 6; index++) ports.push(await clusterPort(taken));
  const clients: Redis[] = [];
  const nodes: ClusterNode[] = ports.map((port) => {
    const dir = mkdtempSync(join(tmpdir(), `genops-cluster-${port}-`));
    const child = spawnManaged(
      `redis-cluster-${port}`,
      'redis-server',
      [...securityArgs(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', String(nodeTimeoutMs), '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0', '--dir', dir],
      process.env,
    );
    let client: Redis | undefined;
    return {
      port,
      process: child,
      client() {
        if (!client) {
          client = new Redis({ ...nodeClientOptions(options), port, maxRetriesPerRequest: 1 });
          client.on('error', () => undefined);
          clients.push(client);
        }
        return client;
      },
    };
  });
  const stop = async () => {
    for (const client of clients) client.disconnect();
    await Promise.all(nodes.map((node) => (node.process.exitCode === undefined ? node.process.stop({ signal: 'SIGTERM', timeoutMs: 5_000 }).catch(() => undefined) : undefined)));
  };
  try {
    const deadline = Date.now() + 10_000;
    for (const node of nodes) {
      while (!(await ping(node.port, options))) {
        if (node.process.exitCode !== undefined) throw new Error(`redis-server on ${node.port} exited: ${node.process.stderrTail()}`);
        if (Date.now() > deadline) throw new Error(`redis-server on ${node.port} did not answer PING within 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await run('redis-cli', [...cliArgs, '--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
  } catch (error) {
    await stop();
    throw error;
  }
  const live = () => nodes.filter((node) => node.process.exitCode === undefined);
  const byPort = (port: number) => nodes.find((node) => node.port === port)!;
  const slotsOf = async (): Promise<[number, number, number][]> => {
    const reply = (await live()[0]!.client().call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
    return reply.map(([from, to, primary]) => [from, to, Number(primary[1])]);
  };
  const cluster: RunningRedisCluster = {
    url: `${tls ? 'rediss' : 'redis'}+cluster://${password ? `:${encodeURIComponent(password)}@` : ''}${ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
    target: { kind: 'cluster', nodes: ports.map((port) => ({ host: '127.0.0.1', port })), tls: Boolean(tls), username: undefined, password },
    nodes,
    async primaryOf(key) {
      const slot = calculateSlot(key);
      const range = (await slotsOf()).find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no primary serves slot ${slot}`);
      return byPort(range[2]);
    },
    async primaries() {
      return [...new Set((await slotsOf()).map(([, , port]) => port))].map(byPort);
    },
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const infos = await Promise.all(live().map((node) => node.client().call('CLUSTER', 'INFO').then(String, () => '')));
        // A replica that has not finished its first sync cannot be promoted: wait for every link to be up too.
        const replication = await Promise.all(live().map((node) => node.client().info('replication').catch(() => '')));
        const linksUp = replication.every((info) => !/role:slave/.test(info) || /master_link_status:up/.test(info));
        if (linksUp && infos.every((info) => /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info))) return;
        if (Date.now() > deadline) throw new Error(`the Redis Cluster did not become healthy within ${timeoutMs} ms:\n${infos.join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    stop,
  };
  try {
    await cluster.waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}
