import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings/settings.js';

const load = (env: Record<string, string>, argv: string[] = []) => loadSettings(argv, env);

describe('GENOPS_REDIS_PASSWORD', () => {
  it('goes into the URL percent-encoded, after an ACL user when the URL names one', () => {
    expect(load({ GENOPS_REDIS_URL: 'redis://genops-redis:6379/0', GENOPS_REDIS_PASSWORD: 'p@ss:w/rd%' }).redisUrl).toBe('redis://:p%40ss%3Aw%2Frd%25@genops-redis:6379/0');
    expect(load({ GENOPS_REDIS_URL: 'rediss://genops@redis.example:6380', GENOPS_REDIS_PASSWORD: 'secret' }).redisUrl).toBe('rediss://genops:secret@redis.example:6380');
    expect(load({ GENOPS_REDIS_URL: 'redis://h:1' }).redisUrl).toBe('redis://h:1');
    expect(load({ GENOPS_REDIS_URL: 'redis://h:1', GENOPS_REDIS_PASSWORD: '' }).redisUrl).toBe('redis://h:1');
  });

  it('applies to a Redis Cluster URL too: every node gets it', () => {
    const settings = load({ GENOPS_REDIS_URL: 'rediss+cluster://genops@n1:7000,n2:7001', GENOPS_REDIS_PASSWORD: 'p@ss' });
    expect(settings.redis).toEqual({ kind: 'cluster', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], tls: true, username: 'genops', password: 'p@ss' });
    expect(load({ GENOPS_REDIS_URL: 'redis://h:1/0', GENOPS_REDIS_PASSWORD: 'p@ss' }).redis).toEqual({ kind: 'node', url: 'redis://:p%40ss@h:1/0' });
  });

  it('is refused with one clear line when ambiguous, alone, or not a password', () => {
    expect(() => load({ GENOPS_REDIS_URL: 'redis://:old@h:1', GENOPS_REDIS_PASSWORD: 'new' })).toThrow('GENOPS_REDIS_URL already carries a password and GENOPS_REDIS_PASSWORD is set: use one of them');
    expect(() => load({ GENOPS_REDIS_PASSWORD: 'secret' })).toThrow('GENOPS_REDIS_PASSWORD is set but GENOPS_REDIS_URL is not');
    expect(() => load({ GENOPS_REDIS_URL: 'redis://h:1', GENOPS_REDIS_PASSWORD: 'line\nbreak' })).toThrow('GENOPS_REDIS_PASSWORD: must be 1 to 512 characters without control characters');
    expect(() => load({ GENOPS_REDIS_URL: 'redis://h:1', GENOPS_REDIS_PASSWORD: 'x'.repeat(513) })).toThrow(/GENOPS_REDIS_PASSWORD/);
  });

  it('is read from the environment only: no flag to leak it into `ps`', () => {
    expect(() => load({}, ['--redis-password', 'secret'])).toThrow(/Unknown option '--redis-password'/);
  });
});

describe('GENOPS_WORKERS', () => {
  it('defaults to 1, takes --workers over the variable, and refuses what is not 1 to 64', () => {
    const redis = { GENOPS_REDIS_URL: 'redis://h:1' };
    expect(load({}).workers).toBe(1);
    expect(load({ ...redis, GENOPS_WORKERS: '4' }).workers).toBe(4);
    expect(load({ ...redis, GENOPS_WORKERS: '4' }, ['--workers', '2']).workers).toBe(2);
    for (const bad of ['0', '65', 'two', '1.5']) expect(() => load({ ...redis, GENOPS_WORKERS: bad })).toThrow(`GENOPS_WORKERS=${bad}: must be an integer from 1 to 64`);
  });

  it('refuses more than one worker with in-memory limits and budgets, naming the setting at fault', () => {
    expect(() => load({ GENOPS_WORKERS: '3' })).toThrow('GENOPS_WORKERS=3 needs GENOPS_REDIS_URL: in memory each worker would enforce its own rate limits and budgets (3 x each); set GENOPS_REDIS_URL or run one worker');
    expect(() => load({}, ['--workers', '2'])).toThrow(/^--workers=2 needs GENOPS_REDIS_URL/);
    expect(load({ GENOPS_WORKERS: '1' }).workers).toBe(1);
  });
});

describe('GENOPS_MAX_HELD_REQUEST_BYTES', () => {
  it('defaults to 256 MiB, takes the flag over the variable, and refuses less than 1 MiB', () => {
    expect(load({}).maxHeldRequestBytes).toBe(256 * 1024 * 1024);
    expect(load({ GENOPS_MAX_HELD_REQUEST_BYTES: '67108864' }).maxHeldRequestBytes).toBe(64 * 1024 * 1024);
    expect(load({ GENOPS_MAX_HELD_REQUEST_BYTES: '67108864' }, ['--max-held-request-bytes', '33554432']).maxHeldRequestBytes).toBe(32 * 1024 * 1024);
    expect(() => load({ GENOPS_MAX_HELD_REQUEST_BYTES: '1000' })).toThrow('GENOPS_MAX_HELD_REQUEST_BYTES=1000: must be an integer from 1048576');
  });
});
