/**
 * The store the Helm chart and the kustomize base ship, run for real: redis-server started with
 * the rendered container's arguments (the password expanded from the rendered Secret as the
 * kubelet does), and two service processes with the rendered Deployment's Redis environment
 * (only the host rewritten to loopback) share one rate limit and one budget through it.
 */
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiRequestBody, type GovernanceClient } from '../support/governance-client.js';
import { createServiceGroup, writePolicyFile } from '../support/service-group.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { find, helm, kustomize, parseObjects, type KubeObject } from '../mesh/support/kube-tools.js';
import { containerOf } from '../mesh/support/manifest-expectations.js';

const POLICY = `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: shipped-store }
spec:
  context: { required: [team, customerId] }
  teams: { ml-platform: {} }
  rateLimits:
    - name: per-customer
      key: [customerId]
      selector: { paths: ["/limited"] }
      capacity: 30
      refill: { amount: 30, every: 1h }
  budgets:
    - name: customer-daily
      key: [customerId]
      amount: "0.01"
      period: daily
`;

type EnvEntry = { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string; optional?: boolean } } };

/** A container's env as the kubelet resolves it from the rendered Secrets (an optional reference to a missing one: unset). */
function resolveEnv(objects: KubeObject[], container: KubeObject): Record<string, string> {
  const secretValue = (ref: { name: string; key: string; optional?: boolean }) => {
    if (ref.optional && !objects.some((object) => object.kind === 'Secret' && object.metadata.name === ref.name)) return undefined;
    const secret = find(objects, 'Secret', ref.name);
    return secret.stringData?.[ref.key] ?? Buffer.from(secret.data[ref.key], 'base64').toString('utf8');
  };
  const entries = (container.env as EnvEntry[]).map((entry) => [entry.name, entry.value ?? secretValue(entry.valueFrom!.secretKeyRef)] as const);
  return Object.fromEntries(entries.filter((entry): entry is readonly [string, string] => entry[1] !== undefined));
}

/** The store's command line with $(VAR) expanded, on a loopback port and a temporary directory. */
function storeArgs(objects: KubeObject[], place: { port: number; dir: string }): string[] {
  const container = objects.find((object) => object.kind === 'StatefulSet')!.spec.template.spec.containers[0];
  const env = resolveEnv(objects, container);
  const args = (container.args as string[]).map((arg) => arg.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => env[name]!));
  const set = (flag: string, value: string) => {
    const index = args.indexOf(flag);
    expect(index, flag).toBeGreaterThanOrEqual(0);
    args[index + 1] = value;
  };
  set('--port', String(place.port));
  set('--dir', place.dir);
  return [...args, '--bind', '127.0.0.1'];
}

const renderings: Record<string, () => Promise<KubeObject[]>> = {
  helm: async () => parseObjects(await helm(['template', 'genops-mesh', 'deploy/helm/genops-mesh', '--namespace', 'genops'])),
  kustomize: () => kustomize('deploy/kubernetes/overlays/standalone'),
};

describe.each(Object.keys(renderings))('the store %s ships, booted', (tool) => {
  let redis: RunningRedis;
  let password: string;
  const group = createServiceGroup();
  const clients: GovernanceClient[] = [];
  beforeAll(async () => {
    const objects = await renderings[tool]!();
    const genopsEnv = resolveEnv(objects, containerOf(find(objects, 'Deployment', 'genops-mesh')));
    password = genopsEnv.GENOPS_REDIS_PASSWORD!;
    expect(password.length).toBeGreaterThanOrEqual(tool === 'helm' ? 40 : 8);
    redis = await startRedis({ args: (place) => storeArgs(objects, place), password });
    // The rendered URL names the store's Service; here the store listens on loopback.
    const url = new URL(genopsEnv.GENOPS_REDIS_URL!);
    url.hostname = '127.0.0.1';
    url.port = String(redis.port);
    const policyPath = writePolicyFile(POLICY, 'genops-shipped-store-');
    for (let replica = 0; replica < 2; replica++) {
      const { client } = await group.start({ policyPath, env: { GENOPS_REDIS_URL: url.toString(), GENOPS_REDIS_PASSWORD: password, GENOPS_REDIS_TIMEOUT_MS: '2000', LOG_LEVEL: 'warn' } });
      clients.push(client);
    }
  });
  afterAll(async () => {
    await group.stop();
    await redis?.stop();
  });

  it('runs with noeviction, the append-only file, and refuses clients without the Secret\'s password', async () => {
    const client = redis.client();
    expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await client.config('GET', 'maxmemory')).toEqual(['maxmemory', String(200 * 1024 * 1024)]);
    // A client without the password, speaking RESP itself: refused before any command runs.
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(redis.port, '127.0.0.1', () => socket.write('GET anything\r\n'));
      socket.once('data', (data) => {
        resolve(data.toString());
        socket.destroy();
      });
      socket.once('error', reject);
    });
    expect(reply).toMatch(/^-NOAUTH Authentication required/);
  });

  it('two replicas with the rendered environment admit, together, exactly one bucket', async () => {
    const headers = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': `rl-${tool}` };
    const responses = await Promise.all(clients.flatMap((client) => Array.from({ length: 25 }, () => client.checkRaw({ attributes: { request: { http: { method: 'GET', path: '/limited', headers } } } }))));
    expect(responses.filter((response) => response.ok_response).length).toBe(30);
    expect(responses.filter((response) => Number(response.denied_response?.status.code) === 429).length).toBe(20);
  });

  it('two replicas hold one budget: together they admit what one replica alone admits', async () => {
    // Reservations held open (no response yet): each admitted request keeps its worst case reserved.
    const alone = await admittedConcurrently([clients[0]!], 24, `alone-${tool}`);
    const together = await admittedConcurrently(clients, 12, `together-${tool}`);
    // Fewer than each replica's share: with a budget per replica, together would admit twice as many.
    expect(alone).toBeGreaterThan(0);
    expect(alone).toBeLessThan(12);
    expect(together).toBe(alone);
    expect(await redis.client().keys('*'), 'the limits and budgets live in the shipped store').toEqual(expect.arrayContaining([expect.stringContaining('customer-daily'), expect.stringContaining('per-customer')]));
  });
});

/**
 * `perClient` concurrent ext_proc exchanges through each client for one customer, each held open
 * after its decision until all are decided. Returns how many were admitted.
 */
async function admittedConcurrently(clients: GovernanceClient[], perClient: number, customer: string): Promise<number> {
  const streams: grpc.ClientDuplexStream<object, Record<string, unknown>>[] = [];
  const decisions = clients.flatMap((client) =>
    Array.from({ length: perClient }, () => {
      const stream = (client.extProc as unknown as { Process(): grpc.ClientDuplexStream<object, Record<string, unknown>> }).Process();
      streams.push(stream);
      stream.on('error', () => undefined);
      return new Promise<'admitted' | 'refused'>((resolve, reject) => {
        stream.on('data', (reply: Record<string, unknown>) => {
          if (reply.request_headers) {
            stream.write({ request_body: { body: aiRequestBody(), end_of_stream: true } });
            return;
          }
          const immediate = reply.immediate_response as { status?: { code?: number } } | undefined;
          if (immediate) return Number(immediate.status?.code) === 429 ? resolve('refused') : reject(new Error(`unexpected immediate response ${JSON.stringify(immediate)}`));
          resolve('admitted');
        });
        const headers = { ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', 'x-genops-team': 'ml-platform', 'x-genops-customer-id': customer };
        stream.write({ request_headers: { headers: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) } } });
      });
    }),
  );
  const outcomes = await Promise.all(decisions);
  for (const stream of streams) stream.cancel();
  return outcomes.filter((outcome) => outcome === 'admitted').length;
}
