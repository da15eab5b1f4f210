import { describe, expect, it } from 'vitest';
import { parseRedisTarget, redactRedisUrl } from '../../src/settings/redis-target.js';
import { loadSettings } from '../../src/settings/settings.js';

describe('GENOPS_REDIS_URL', () => {
  it('reads one node as before, and a cluster from its seed nodes with TLS and credentials', () => {
    expect(parseRedisTarget('redis://:secret@redis:6379/0')).toEqual({ kind: 'node', url: 'redis://:secret@redis:6379/0' });
    expect(parseRedisTarget('redis+cluster://10.0.0.1:7000,redis-1.redis:7001,[::1]:7002,plain')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-1.redis', port: 7001 },
        { host: '::1', port: 7002 },
        { host: 'plain', port: 6379 },
      ],
      tls: false,
      username: undefined,
      password: undefined,
    });
    expect(parseRedisTarget('rediss+cluster://genops:p%40ss%3Aw0rd@h1:6380,h2:6380/')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'h1', port: 6380 },
        { host: 'h2', port: 6380 },
      ],
      tls: true,
      username: 'genops',
      password: 'p@ss:w0rd',
    });
    expect(parseRedisTarget('redis+cluster://:only-password@h1:7000')).toMatchObject({ username: undefined, password: 'only-password' });
  });

  it('refuses a bad URL at start-up with one line naming the variable, never echoing the password', () => {
    const start = (url: string) => () => loadSettings([], { GENOPS_REDIS_URL: url });
    expect(start('http://redis:6379')).toThrow('GENOPS_REDIS_URL=http://redis:6379: must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL');
    expect(start('redis+cluster://')).toThrow('GENOPS_REDIS_URL=redis+cluster://: names no cluster node: list one or more host:port seed nodes, comma-separated');
    expect(start('redis+cluster://u:hunter2@h1:7000,h2:99999')).toThrow('GENOPS_REDIS_URL=redis+cluster://u:***@h1:7000,h2:99999: has a cluster node "h2:99999" that is not host:port (IPv6 as [addr]:port)');
    expect(start('redis+cluster://h1:7000,,h2:7001')).toThrow(/has a cluster node "" that is not host:port/);
    expect(start('redis+cluster://h1:7000/3')).toThrow('a cluster URL has no database, path or query (a Redis Cluster has only database 0)');
    expect(() => loadSettings(['--redis-url', 'redis+cluster://h1:x'], {})).toThrow(/^--redis-url=redis\+cluster:\/\/h1:x: has a cluster node "h1:x"/);
    expect(loadSettings([], { GENOPS_REDIS_URL: 'redis+cluster://h1:7000' }).redis).toMatchObject({ kind: 'cluster', nodes: [{ host: 'h1', port: 7000 }] });
    expect(redactRedisUrl('rediss://default:s3cret@redis:6379')).toBe('rediss://default:***@redis:6379');
    // The password from its own setting (a Secret) reaches every cluster node too.
    expect(loadSettings([], { GENOPS_REDIS_URL: 'rediss+cluster://genops@h1:7000,h2:7000', GENOPS_REDIS_PASSWORD: 'p@ss:w/rd' }).redis).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'h1', port: 7000 },
        { host: 'h2', port: 7000 },
      ],
      tls: true,
      username: 'genops',
      password: 'p@ss:w/rd',
    });
  });
});
