import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVICE_ENTRY } from '../../src/demo/repo-root.js';
import { startService, type RunningService } from '../support/index.js';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';

const defaultPolicy = readFileSync(new URL('../../deploy/default-policy.yaml', import.meta.url), 'utf8');
const allowed = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' };

function policyFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'genops-process-')), 'policy.yaml');
  writeFileSync(path, text);
  return path;
}

/** Runs the service expecting it to refuse to start; returns its exit code and stderr. */
function startFailing(env: Record<string, string>, args: string[] = []) {
  const result = spawnSync(process.execPath, [SERVICE_ENTRY, ...args], {
    env: { PATH: process.env.PATH, GENOPS_GRPC_PORT: '0', GENOPS_ADMIN_PORT: '0', GENOPS_LISTEN_HOST: '127.0.0.1', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('start-up errors', () => {
  it('a broken policy file exits non-zero with one line naming the file, YAML path and problem', () => {
    const path = policyFile(defaultPolicy.replace('product-team:', 'product_team:'));
    const { status, stderr } = startFailing({ GENOPS_POLICY: path });
    expect(status).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`^genops-mesh: ${path}:\\d+:\\d+: spec\\.teams\\.product_team: must be kebab-case`));
  });

  it('a missing policy file names the file', () => {
    const { status, stderr } = startFailing({}, ['--policy', '/nonexistent/policy.yaml']);
    expect(status).toBe(2);
    expect(stderr).toMatch(/^genops-mesh: \/nonexistent\/policy\.yaml: cannot read policy file: ENOENT/);
  });

  it.each([
    [{ GENOPS_GRPC_PORT: 'ninety' }, [], 'GENOPS_GRPC_PORT=ninety: must be an integer from 0 to 65535'],
    [{ LOG_LEVEL: 'loud' }, [], 'LOG_LEVEL=loud: must be one of fatal, error, warn, info, debug, trace, silent'],
    [{ GENOPS_REDIS_URL: 'localhost:6379' }, [], 'GENOPS_REDIS_URL=localhost:6379: must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL'],
    [{ GENOPS_REDIS_URL: 'redis+cluster://:s3cret@h1:7000,h2' }, ['--redis-url', 'redis+cluster://:s3cret@h1:7000,h2:0'], '--redis-url=redis+cluster://:***@h1:7000,h2:0: has a cluster node "h2:0" that is not host:port (IPv6 as [addr]:port)'],
    [{}, ['--admin-port', '70000'], '--admin-port=70000: must be an integer from 0 to 65535'],
    [{}, ['--polcy', 'x.yaml'], "Unknown option '--polcy'"],
    [{ GENOPS_CLOCK_OFFSET_MS: '1d' }, [], 'GENOPS_CLOCK_OFFSET_MS=1d: must be an integer from -31622400000 to 31622400000'],
  ])('a bad setting %j %j exits non-zero naming it', (env, args, message) => {
    const { status, stderr } = startFailing(env as Record<string, string>, args);
    expect(status).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain(message);
  });
});

describe('running service', () => {
  let service: RunningService | undefined;
  let client: GovernanceClient | undefined;
  afterEach(async () => {
    client?.close();
    await service?.stop().catch(() => undefined);
  });

  async function start(policyPath?: string) {
    service = await startService(policyPath ? { policyPath } : {});
    client = createGovernanceClient(`${service.host}:${service.grpcPort}`);
    return { service, client };
  }

  async function metric(name: string): Promise<string> {
    const text = await (await fetch(`${service!.adminUrl}/metrics`)).text();
    return text.split('\n').filter((line) => line.startsWith(name)).join('\n');
  }

  async function eventually(probe: () => Promise<boolean>, what: string): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      if (await probe()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  it('hot-reloads a valid edit, and keeps the last good policy when a broken one is written (logged and counted)', async () => {
    const path = policyFile(defaultPolicy);
    const { client } = await start(path);
    const finance = { ...allowed, 'x-genops-team': 'finance', 'x-genops-model': 'claude-haiku-4-5' };
    expect((await client.check(finance)).denied_response).toBeDefined();

    writeFileSync(path, defaultPolicy.replace('  teams:', '  teams:\n    finance: { models: [claude-haiku] }'));
    await eventually(async () => (await client.check(finance)).status.code === 0, 'the edited policy to allow finance');
    expect(await metric('genops_policy_reloads_total{result="success"}')).toMatch(/ 1$/);

    writeFileSync(path, 'apiVersion: genops.ai/v1alpha1\nkind: GovernancePolicy\nmetadata: { name: broken }\nspec:\n  teams: [finance]\n');
    await eventually(async () => (await metric('genops_policy_reloads_total{result="failure"}')).endsWith(' 1'), 'the failed reload to be counted');
    expect((await client.check(finance)).status.code).toBe(0);
    const failure = service!.logs().find((line) => line.event === 'policy_reload_failed');
    expect(failure?.level).toBe('error');
    expect(String(failure?.err)).toContain(`${path}:5:10: spec.teams: must be a record, not a list`);
  });

  it('serves grpc.health.v1 for the server and both Envoy services', async () => {
    const { client } = await start();
    expect(await client.health('')).toBe('SERVING');
    expect(await client.health('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    expect(await client.health('envoy.service.ext_proc.v3.ExternalProcessor')).toBe('SERVING');
    await expect(client.health('nope')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('on SIGTERM reports NOT_SERVING to watchers, drains and exits 0', async () => {
    const { service, client } = await start();
    const seen: string[] = [];
    const watch = (client.healthClient as unknown as { Watch(request: { service: string }): grpc.ClientReadableStream<{ status: number }> }).Watch({ service: '' });
    watch.on('data', (message) => seen.push(['UNKNOWN', 'SERVING', 'NOT_SERVING'][message.status] ?? String(message.status)));
    watch.on('error', () => undefined);
    await eventually(async () => seen.length > 0, 'the first health update');
    const code = await service.stop();
    expect(code).toBe(0);
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
    expect(service.logs().map((line) => line.event)).toEqual(expect.arrayContaining(['draining', 'stopped']));
  });

  it('answers garbage bytes on Check with an error status and keeps serving', async () => {
    const { service, client } = await start();
    const raw = new grpc.Client(`${service.host}:${service.grpcPort}`, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      raw.makeUnaryRequest('/envoy.service.auth.v3.Authorization/Check', (bytes: Buffer) => bytes, (bytes: Buffer) => bytes, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), (failure) => resolve(failure!));
    });
    raw.close();
    expect(error.code).toBe(grpc.status.INTERNAL);
    expect((await client.check(allowed)).status.code).toBe(0);
  });

  it('ends an ext_proc stream that sends an empty message with INVALID_ARGUMENT, counted, and keeps serving', async () => {
    const { client } = await start();
    const stream = (client.extProc as unknown as { Process(): grpc.ClientDuplexStream<object, object> }).Process();
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      stream.on('error', resolve);
      stream.on('data', () => undefined);
      stream.write({});
    });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe('ProcessingRequest carries none of the request kinds this service knows');
    expect(await metric('genops_malformed_messages_total{service="ext_proc"}')).toMatch(/ 1$/);
    expect((await client.check(allowed)).status.code).toBe(0);
  });
});
