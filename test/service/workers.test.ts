/**
 * GENOPS_WORKERS: worker processes on one gRPC port and one forward-auth port, state shared
 * through a real Redis, one admin endpoint on the primary (metrics aggregated, readiness of all),
 * a worker that dies replaced, SIGTERM draining every worker, the policy hot-reloaded in each.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_ENTRY } from '../../src/demo/repo-root.js';
import { SERVICE_NODE_FLAGS } from '../../src/server/service-node-flags.js';
import { freePort, startService, type RunningService } from '../support/index.js';
import { aiRequestBody, createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { writePolicyFile } from '../support/service-group.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { eventually, scrape } from '../telemetry/telemetry-support.js';

const policy = (teams: string) => `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: workers }
spec:
  context: { required: [team, customerId] }
  teams: { ${teams} }
  rateLimits:
    - name: per-customer
      key: [customerId]
      selector: { paths: ["/limited"] }
      capacity: 10
      refill: { amount: 10, every: 1h }
  budgets:
    # Only ext_proc reserves: Check refuses what an enforced budget selects, so this one selects no Check here.
    - { name: customer-daily, key: [customerId], amount: "100", period: daily, selector: { paths: ["/v1/responses"] } }
`;

const ADMIN_TOKEN = 'workers-test-admin-token';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('GENOPS_WORKERS', () => {
  it('refuses two workers with in-memory limits and budgets, with one line and exit code 2', () => {
    const result = spawnSync(process.execPath, [...SERVICE_NODE_FLAGS, SERVICE_ENTRY], { env: { PATH: process.env.PATH, GENOPS_WORKERS: '2', OTEL_SDK_DISABLED: 'true' }, encoding: 'utf8', timeout: 15_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe('genops-mesh: GENOPS_WORKERS=2 needs GENOPS_REDIS_URL: in memory each worker would enforce its own rate limits and budgets (2 x each); set GENOPS_REDIS_URL or run one worker\n');
  });

  it('stops with exit code 2 and the worker\'s one line when a worker cannot listen', async () => {
    const taken = createServer();
    const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as AddressInfo).port)));
    try {
      const redis = await startRedis();
      try {
        const env = { PATH: process.env.PATH, GENOPS_WORKERS: '2', GENOPS_REDIS_URL: redis.url, GENOPS_LISTEN_HOST: '127.0.0.1', GENOPS_GRPC_PORT: String(await freePort()), GENOPS_ADMIN_PORT: String(await freePort()), GENOPS_FORWARD_AUTH_PORT: String(port), OTEL_SDK_DISABLED: 'true' };
        const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          execFile(process.execPath, [...SERVICE_NODE_FLAGS, SERVICE_ENTRY], { env, timeout: 20_000 }, (error, stdout, stderr) => resolve({ code: error ? (error.code as number | null) : 0, stdout, stderr }));
        });
        expect(result.code).toBe(2);
        expect(result.stderr).toContain(`genops-mesh: cannot listen for forward-auth HTTP on 127.0.0.1:${port}: `);
        expect(result.stdout).toContain('"event":"worker_failed_to_start"');
      } finally {
        await redis.stop();
      }
    } finally {
      taken.close();
    }
  });

  it('gives up when workers keep dying: more than 5 exits in a minute stop the primary with exit 1', async () => {
    const redis = await startRedis();
    const service = await startService({ env: { GENOPS_WORKERS: '2', GENOPS_REDIS_URL: redis.url, LOG_LEVEL: 'info' } });
    try {
      const listening = () => service.logs().filter((line) => line.event === 'listening').map((line) => Number(line.pid));
      await eventually(() => listening().length === 2 || undefined, 'both workers listening');
      for (let kill = 1; kill <= 6; kill++) {
        const newest = listening().at(-1)!;
        process.kill(newest, 'SIGKILL');
        if (kill < 6) await eventually(() => listening().length === 2 + kill || undefined, `replacement ${kill}`, 15_000);
      }
      await eventually(() => service.process.exitCode !== undefined || undefined, 'the primary to exit', 15_000);
      expect(service.process.exitCode).toBe(1);
      expect(service.logs().find((line) => line.event === 'workers_crash_looping')).toMatchObject({ level: 'fatal', exits: 6 });
      expect(service.logs().filter((line) => line.event === 'worker_exited')).toHaveLength(5);
      await eventually(() => listening().filter(alive).length === 0 || undefined, 'no worker left behind');
    } finally {
      await service.stop({ signal: 'SIGKILL' }).catch(() => undefined);
      await redis.stop();
    }
  });

  describe('two workers on one port', () => {
    let redis: RunningRedis;
    let service: RunningService;
    let policyPath: string;
    let forwardAuthPort: number;
    const clients: GovernanceClient[] = [];
    // Four channels, each its own connection (grpc-js would otherwise share one per target).
    const connect = () => {
      const client = createGovernanceClient(`${service.host}:${service.grpcPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(client);
      return client;
    };
    const workerPids = () => service.logs().filter((line) => line.event === 'listening').map((line) => Number(line.pid));
    const decisionPids = (service: string) => new Set(serviceLogs().filter((line) => line.event === 'decision' && line.service === service).map((line) => Number(line.pid)));
    const serviceLogs = () => service.logs();
    const allowed = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme' };

    beforeAll(async () => {
      redis = await startRedis();
      policyPath = writePolicyFile(policy('ml-platform: {}, data-science: {}'), 'genops-workers-');
      forwardAuthPort = await freePort();
      service = await startService({ policyPath, env: { GENOPS_WORKERS: '2', GENOPS_REDIS_URL: redis.url, GENOPS_REDIS_TIMEOUT_MS: '2000', GENOPS_FORWARD_AUTH_PORT: String(forwardAuthPort), GENOPS_ADMIN_TOKEN: ADMIN_TOKEN, LOG_LEVEL: 'debug' } });
      await eventually(() => workerPids().length === 2, 'both workers listening');
    });
    afterAll(async () => {
      for (const client of clients) client.close();
      await service?.stop({ timeoutMs: 20_000 }).catch(() => undefined);
      await redis?.stop();
    });
    const writePolicy = (text: string) => writeFileSync(policyPath, text);

    it('spreads connections over both workers, on the gRPC and the forward-auth port', async () => {
      const [primaryPid] = service.logs().filter((line) => line.event === 'workers_started').map((line) => Number(line.pid));
      expect(primaryPid).toBe(service.process.pid);
      const workers = workerPids();
      expect(new Set(workers).size).toBe(2);
      expect(workers).not.toContain(primaryPid);

      const channels = [connect(), connect(), connect(), connect()];
      for (const client of channels) for (let call = 0; call < 5; call++) expect((await client.check(allowed)).status.code).toBe(0);
      await eventually(() => decisionPids('authz').size === 2 || undefined, 'decisions logged by both workers');
      expect([...decisionPids('authz')].sort()).toEqual([...workers].sort());

      // Forward auth: a new connection per request, handed to the workers in turn.
      for (let call = 0; call < 6; call++) {
        const status = await new Promise<number>((resolve, reject) => {
          request({ host: service.host, port: forwardAuthPort, path: '/forward-auth', agent: false, headers: { ...allowed, 'x-original-method': 'GET', 'x-original-uri': '/health' } }, (response) => {
            response.resume();
            resolve(response.statusCode!);
          }).on('error', reject).end();
        });
        expect(status).toBe(200);
      }
      await eventually(() => decisionPids('forward_auth').size === 2 || undefined, 'forward-auth decisions by both workers');
    });

    it('aggregates /metrics over the workers: counters and histograms sum, the primary adds its own', async () => {
      const before = await scrape(service.adminUrl);
      const base = before.value('genops_requests_total', { service: 'authz', decision: 'ALLOWED' });
      const baseCount = before.value('genops_decision_duration_seconds_count', { service: 'authz' });
      const channels = [connect(), connect()];
      await Promise.all(channels.flatMap((client) => Array.from({ length: 15 }, () => client.check(allowed))));
      const after = await scrape(service.adminUrl);
      expect(after.value('genops_requests_total', { service: 'authz', decision: 'ALLOWED' }) - base).toBe(30);
      expect(after.value('genops_decision_duration_seconds_count', { service: 'authz' }) - baseCount).toBe(30);
      expect(after.value('genops_decision_duration_seconds_bucket', { service: 'authz', le: '+Inf' })).toBe(after.value('genops_decision_duration_seconds_count', { service: 'authz' }));
      expect(after.value('genops_workers', {})).toBe(2);
      expect(after.value('genops_worker_restarts_total', {})).toBe(0);
      // One nodejs_version_info series, not one per worker.
      expect(after.find('nodejs_version_info')).toHaveLength(1);
      // /budgets is served by the primary too, merged from the workers.
      const budgets = await fetch(`${service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect((await fetch(`${service.adminUrl}/budgets`)).status, 'not without the token').toBe(401);
      expect(budgets.status).toBe(200);
      expect(((await budgets.json()) as { budgets: { name: string }[] }).budgets.map((budget) => budget.name)).toEqual(['customer-daily']);
    });

    it('shares rate limits through Redis: both workers together admit one bucket', async () => {
      const channels = [connect(), connect(), connect()];
      const headers = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'shared-bucket' };
      const responses = await Promise.all(channels.flatMap((client) => Array.from({ length: 10 }, () => client.checkRaw({ attributes: { request: { http: { method: 'GET', path: '/limited', headers } } } }))));
      expect(responses.filter((response) => response.ok_response).length).toBe(10);
      // Each worker writes its decision lines asynchronously: wait for both to arrive, not just the first.
      const sharedBucketPids = () => new Set(serviceLogs().filter((line) => line.event === 'decision' && line.customer_id === 'shared-bucket').map((line) => line.pid));
      await eventually(() => sharedBucketPids().size === 2 || undefined, 'decisions on the shared bucket by both workers');
    });

    it('hot-reloads the policy in every worker', async () => {
      const channels = [connect(), connect(), connect(), connect()];
      for (const client of channels) expect((await client.check({ ...allowed, 'x-genops-team': 'data-science' })).status.code).toBe(0);
      writePolicy(policy('ml-platform: {}'));
      await eventually(async () => {
        const responses = await Promise.all(channels.map((client) => client.check({ ...allowed, 'x-genops-team': 'data-science' })));
        return responses.every((response) => Number(response.denied_response?.status.code) === 403) || undefined;
      }, 'every worker to refuse the team the new policy drops');
      await eventually(() => new Set(serviceLogs().filter((line) => line.event === 'policy_reloaded').map((line) => line.pid)).size === 2 || undefined, 'a reload logged by each worker');
    });

    it('replaces a worker that dies; the port keeps answering', async () => {
      const [victim, survivor] = workerPids();
      process.kill(victim!, 'SIGKILL');
      await eventually(() => workerPids().length === 3 || undefined, 'a replacement worker listening', 15_000);
      const replacement = workerPids()[2]!;
      expect([victim, survivor]).not.toContain(replacement);
      expect(service.logs().find((line) => line.event === 'worker_exited')).toMatchObject({ level: 'error', pid: victim, signal: 'SIGKILL' });
      await eventually(async () => (await fetch(`${service.adminUrl}/readyz`)).status === 200 || undefined, 'ready again');
      const metrics = await scrape(service.adminUrl);
      expect(metrics.value('genops_worker_restarts_total', {})).toBe(1);
      expect(metrics.value('genops_workers', {})).toBe(2);
      for (const client of [connect(), connect()]) expect((await client.check(allowed)).status.code).toBe(0);
    });

    it('SIGTERM drains every worker: an exchange in flight completes, then all processes exit 0', async () => {
      const pids = workerPids().filter(alive);
      expect(pids).toHaveLength(2);
      const client = connect();
      const stream = (client.extProc as unknown as { Process(): grpc.ClientDuplexStream<object, Record<string, unknown>> }).Process();
      const replies: Record<string, unknown>[] = [];
      const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
      stream.on('error', () => undefined);
      stream.on('data', (reply) => replies.push(reply));
      const headers = { ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', ...allowed };
      stream.write({ request_headers: { headers: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) } } });
      await eventually(() => replies.length === 1 || undefined, 'the reply to the request headers');

      const exited = service.stop({ timeoutMs: 20_000 });
      await eventually(() => service.logs().filter((line) => line.event === 'draining').length === 3 || undefined, 'the primary and both workers draining');
      expect(await fetch(`${service.adminUrl}/readyz`).then((response) => response.status)).toBe(503);
      // The exchange started before SIGTERM goes on to its end.
      stream.write({ request_body: { body: aiRequestBody(), end_of_stream: true } });
      await eventually(() => replies.length === 2 || undefined, 'the reply to the body');
      stream.end();
      expect((await ended).code).toBe(grpc.status.OK);
      expect(await exited).toBe(0);
      expect(pids.filter(alive)).toEqual([]);
      expect(service.logs().filter((line) => line.event === 'stopped')).toHaveLength(3);
    });
  });
});
