import type { RedisTarget } from '../limits/redis-connection.js';

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;

/**
 * Reads GENOPS_REDIS_URL: `redis://` / `rediss://` is one node (a primary, or
 * a proxy); `redis+cluster://[user:password@]host:port,host:port` (or
 * `rediss+cluster://` for TLS) is a Redis Cluster, given by one or more seed
 * nodes. Throws an Error naming what is wrong (the caller adds the setting's
 * name); the password never appears in a message.
 */
export function parseRedisTarget(url: string): RedisTarget {
  if (/^rediss?:\/\//i.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new Error('is not a valid URL');
    }
    return { kind: 'node', url };
  }
  const scheme = CLUSTER_SCHEME.exec(url);
  if (!scheme) throw new Error('must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL');
  let rest = url.slice(scheme[0].length);
  const slash = rest.search(/[/?#]/);
  if (slash >= 0) {
    const tail = rest.slice(slash);
    if (tail !== '/' && tail !== '') throw new Error('a cluster URL has no database, path or query (a Redis Cluster has only database 0)');
    rest = rest.slice(0, slash);
  }
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(':');
    const decode = (text: string) => {
      try {
        return decodeURIComponent(text);
      } catch {
        throw new Error('has credentials that are not valid percent-encoding');
      }
    };
    username = colon >= 0 ? decode(auth.slice(0, colon)) || undefined : decode(auth) || undefined;
    password = colon >= 0 ? decode(auth.slice(colon + 1)) || undefined : undefined;
  }
  if (rest === '') throw new Error('names no cluster node: list one or more host:port seed nodes, comma-separated');
  const nodes = rest.split(',').map((node) => {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::(\d+))?$/.exec(node);
    const port = match?.[3] === undefined ? 6379 : Number(match[3]);
    if (!match || port < 1 || port > 65_535) throw new Error(`has a cluster node ${JSON.stringify(node)} that is not host:port (IPv6 as [addr]:port)`);
    return { host: match[1] ?? match[2]!, port };
  });
  return { kind: 'cluster', nodes, tls: scheme[1]!.toLowerCase() === 'rediss', username, password };
}

/** The URL with its password replaced by "***", for error messages and logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^([a-z+]+:\/\/[^@/]*?:)[^@/]*@/i, '$1***@');
}
