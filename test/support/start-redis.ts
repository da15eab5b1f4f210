import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/demo/free-port.js';
import { spawnManaged, type ManagedProcess } from '../../src/demo/managed-process.js';

export interface RunningRedis {
  readonly port: number;
  readonly url: string;
  readonly process: ManagedProcess;
  /** A plain client for assertions; closed by stop(). */
  client(): Redis;
  stop(): Promise<void>;
}

function redisServerPath(): string {
  for (const candidate of ['redis-server', '/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // try the next place
    }
  }
  throw new Error('redis-server is not installed: run `npm run setup` (installs the Debian package redis-server)');
}

/**
 * A real redis-server on a free loopback port, without persistence, in its
 * own temporary directory. Pass `port` to restart one on the same address; `args` to run
 * another command line (given the port and directory to use), `password` if it sets requirepass.
 */
export async function startRedis(options: { port?: number; args?: (place: { port: number; dir: string }) => string[]; password?: string } = {}): Promise<RunningRedis> {
  const server = redisServerPath();
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'genops-redis-'));
  const args = options.args ? options.args({ port, dir }) : ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const child = spawnManaged('redis-server', server, args, process.env);
  const url = options.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`;
  const clients: Redis[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== undefined) throw new Error(`redis-server exited with ${child.exitCode}: ${child.stderrTail() || child.stdoutLines.join('\n')}`);
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') {
        probe.disconnect();
        break;
      }
    } catch {
      probe.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    url,
    process: child,
    client() {
      const client = new Redis(url, { maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    },
    async stop() {
      for (const client of clients) client.disconnect();
      await child.stop({ signal: 'SIGTERM', timeoutMs: 5_000 });
    },
  };
}
