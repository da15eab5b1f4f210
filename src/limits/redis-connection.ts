import { Redis } from 'ioredis';

/**
 * A Redis connection tuned for the hot path: a tight per-command timeout, no
 * offline queue (a command while disconnected fails at once instead of
 * waiting), no per-command retries, and background reconnection. Commands
 * issued in the same event-loop tick leave in one write (auto-pipelining):
 * without it each request's script call was a write syscall of its own, 10 %
 * of the service's CPU under load (bench/RESULTS.md, shared limits).
 */
export function connectRedis(url: string, options: { timeoutMs: number; onError: (error: Error) => void }): Redis {
  const client = new Redis(url, {
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(1_000, options.timeoutMs),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    lazyConnect: false,
    enableAutoPipelining: true,
  });
  client.on('error', options.onError);
  return client;
}

/** Resolves true once the client is ready, false if it is not within `timeoutMs`. */
export function waitForRedis(client: Redis, timeoutMs: number): Promise<boolean> {
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
