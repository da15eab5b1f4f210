import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** One Redis node or a Redis Cluster: the calls the backends use are the same on both. */
export type RedisClient = Redis | Cluster;

/** Where to connect: settings/redis-target.ts reads it from GENOPS_REDIS_URL. */
export type RedisTarget =
  | { readonly kind: 'node'; readonly url: string }
  | {
      readonly kind: 'cluster';
      /** Seed nodes; the client learns the rest (and every failover) from CLUSTER SLOTS. */
      readonly nodes: readonly { readonly host: string; readonly port: number }[];
      readonly tls: boolean;
      readonly username: string | undefined;
      readonly password: string | undefined;
    };

/**
 * A Redis connection tuned for the hot path: a tight per-command timeout, no
 * offline queue (a command while disconnected fails at once instead of
 * waiting), no per-command retries, and background reconnection. Commands
 * issued in the same event-loop tick leave in one write (auto-pipelining):
 * without it each request's script call was a write syscall of its own, 10 %
 * of the service's CPU under load (bench/RESULTS.md, shared limits).
 *
 * A cluster URL gives ioredis's Cluster client with the same per-node
 * settings, without auto-pipelining (see below). It follows MOVED/ASK redirections (the command never ran), but
 * never re-sends a command whose connection dropped or that met CLUSTERDOWN
 * (it may have run: a budget script or a rate-limit charge must not apply
 * twice); such a command fails, and the caller's failure mode applies. The
 * slot map is refreshed every second, so a promoted replica takes over
 * within about a second of its election.
 */
export function connectRedis(to: RedisTarget | string, options: { timeoutMs: number; onError: (error: Error) => void }): RedisClient {
  const target: RedisTarget = typeof to === 'string' ? { kind: 'node', url: to } : to;
  const nodeOptions: RedisOptions = {
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(1_000, options.timeoutMs),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    lazyConnect: false,
    enableAutoPipelining: true,
  };
  if (target.kind === 'node') {
    const client = new Redis(target.url, nodeOptions);
    client.on('error', options.onError);
    return client;
  }
  const cluster = new Cluster(
    target.nodes.map(({ host, port }) => ({ host, port })),
    {
      redisOptions: {
        ...nodeOptions,
        // ioredis 5.11's auto-pipelining on a Cluster crashed the process under load (a pipeline
        // resolved with fewer results than commands: "results[i] is not iterable" thrown from
        // autoPipelining.js, found by the soak): each command goes on its own on a Cluster.
        enableAutoPipelining: false,
        ...(target.username === undefined ? {} : { username: target.username }),
        ...(target.password === undefined ? {} : { password: target.password }),
        ...(target.tls ? { tls: {} } : {}),
      },
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      // Re-sending after a dropped connection or CLUSTERDOWN could apply a script twice.
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      retryDelayOnTryAgain: 50,
      maxRedirections: 4,
      slotsRefreshInterval: 1_000,
      slotsRefreshTimeout: Math.max(1_000, options.timeoutMs),
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
      // TLS certificates name hosts, and a cluster announces addresses: keep the names given.
      ...(target.tls ? { dnsLookup: (address: string, callback: (error: Error | null, address: string) => void) => callback(null, address) } : {}),
    },
  );
  cluster.on('error', options.onError);
  cluster.on('node error', options.onError);
  return cluster;
}

/**
 * Resolves true once the client is ready, false if it is not within `timeoutMs`. On a Cluster,
 * ready also means a live connection to every primary: the Cluster client connects to a node on
 * its first command, and without an offline queue a second command to a node still connecting
 * fails at once ("Connection is closed") — the first burst after start would meet the failure mode.
 */
export async function waitForRedis(client: RedisClient, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  if (!(await becomesReady(client, timeoutMs))) return false;
  if (!(client instanceof Cluster)) return true;
  const primaries = client.nodes('master');
  for (const node of primaries) if (node.status === 'wait') node.connect().catch(() => undefined);
  const ready = await Promise.all(primaries.map((node) => becomesReady(node, Math.max(0, deadline - Date.now()))));
  return ready.every(Boolean);
}

function becomesReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}

/**
 * Loads scripts into the script cache of every primary on each (re)connect,
 * so the first burst of requests does not pay a NOSCRIPT round trip each
 * before falling back to EVAL (a promoted replica has an empty cache).
 */
export function preloadScripts(client: RedisClient, scripts: readonly string[]): void {
  const loadInto = (node: Redis) => {
    for (const script of scripts) void node.script('LOAD', script).catch(() => undefined);
  };
  const load = () => {
    for (const node of client instanceof Cluster ? client.nodes('master') : [client]) loadInto(node);
  };
  client.on('ready', load);
  if (client instanceof Cluster) client.on('+node', loadInto);
  if (client.status === 'ready') load();
}

type ScriptCall = (keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

/**
 * A Lua script as a function of (keys, args), run with EVALSHA (EVAL on
 * NOSCRIPT). It is defined once per key count with a fixed number of keys, so
 * its first argument is a key: ioredis routes an auto-pipelined command by its
 * first argument, which for a script with a variable key count is the count
 * (commands for different shards would share a pipeline and fail).
 */
export function defineScript(client: RedisClient, name: string, lua: string): ScriptCall {
  const defined = new Map<number, (...args: (string | number)[]) => Promise<unknown>>();
  return (keys, args) => {
    let command = defined.get(keys.length);
    if (!command) {
      const commandName = `${name}${keys.length}`;
      client.defineCommand(commandName, { lua, numberOfKeys: keys.length });
      command = (client as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown>>)[commandName]!.bind(client);
      defined.set(keys.length, command);
    }
    return command(...keys, ...args);
  };
}
