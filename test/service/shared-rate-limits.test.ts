import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createServiceGroup, writePolicyFile } from '../support/service-group.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';

const policy = (capacity: number, failureMode: 'open' | 'closed') => `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: shared-limits }
spec:
  context: { required: [team, customerId] }
  teams: { ml-platform: {} }
  rateLimits:
    - name: per-customer
      key: [customerId]
      capacity: ${capacity}
      refill: { amount: ${capacity}, every: 1h }
      failureMode: ${failureMode}
`;

const group = createServiceGroup();
afterEach(() => group.stop());
const writePolicy = (text: string) => writePolicyFile(text, 'genops-shared-');

function service(redis: RunningRedis, policyPath: string, timeoutMs = 50) {
  return group.start({ policyPath, env: { GENOPS_REDIS_URL: redis.url, GENOPS_REDIS_TIMEOUT_MS: String(timeoutMs), LOG_LEVEL: 'warn' } });
}

const customer = (id: string) => ({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': id });

describe('rate limits shared through Redis', () => {
  it('two service processes admit, together, exactly one bucket’s worth', async () => {
    const redis = await startRedis();
    group.track(redis);
    const policyPath = writePolicy(policy(50, 'open'));
    // A generous Redis timeout: this test is about sharing, not about the failure mode.
    const [first, second] = [await service(redis, policyPath, 2_000), await service(redis, policyPath, 2_000)];
    // 2 × 60 concurrent checks for one customer against a bucket of 50. Each check is
    // one atomic script in Redis, and the refill (50 per hour) adds under 0.1 token
    // during the test, so the tolerance is zero: exactly 50 are admitted.
    const calls = [first, second].flatMap(({ client }) => Array.from({ length: 60 }, () => client.check(customer('acme'))));
    const responses = await Promise.all(calls);
    const admitted = responses.filter((response) => response.ok_response).length;
    const limited = responses.filter((response) => Number(response.denied_response?.status.code) === 429).length;
    expect(admitted).toBe(50);
    expect(limited).toBe(70);
    const other = await second.client.check(customer('globex'));
    expect(other.status.code).toBe(0);
  });

  it('Redis stopped in the middle of traffic: fail-open admits, nothing hangs or crashes, limits return with Redis', async () => {
    let redis = await startRedis();
    const port = redis.port;
    const { service: started, client } = await service(redis, writePolicy(policy(3, 'open')));
    for (let index = 0; index < 3; index++) expect((await client.check(customer('acme'))).status.code).toBe(0);
    expect((await client.check(customer('acme'))).denied_response).toBeDefined();

    await redis.stop();
    const during = await Promise.all(Array.from({ length: 20 }, (_, index) => client.check(customer(`c${index}`))));
    expect(during.every((response) => response.status.code === 0)).toBe(true);
    const metrics = await (await fetch(`${started.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/genops_rate_limit_checks_total\{limit="per-customer",outcome="backend_error"\} 20/);
    expect(metrics).toMatch(/genops_backend_errors_total\{backend="redis",kind="command"\} [1-9]\d*/);
    expect(started.process.exitCode).toBeUndefined();

    redis = await startRedis({ port });
    group.track(redis);
    let recovered = false;
    for (let attempt = 0; attempt < 50 && !recovered; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const response = await client.check(customer('fresh'));
      recovered = response.ok_response?.response_headers_to_add.some((option) => option.header.key === 'ratelimit') ?? false;
    }
    expect(recovered).toBe(true);
    for (let index = 0; index < 2; index++) expect((await client.check(customer('fresh'))).status.code).toBe(0);
    expect(Number((await client.check(customer('fresh'))).denied_response?.status.code)).toBe(429);
  });

  it('fail-closed refuses with 503 while Redis is unreachable', async () => {
    const redis = await startRedis();
    const { client } = await service(redis, writePolicy(policy(3, 'closed')));
    expect((await client.check(customer('acme'))).status.code).toBe(0);
    await redis.stop();
    const response = await client.check(customer('acme'));
    expect(Number(response.denied_response?.status.code)).toBe(503);
    expect(JSON.parse(response.denied_response!.body)).toMatchObject({ reason_code: 'x_rate_limit_unavailable' });
  });

  it('ext_proc: a reply still waiting on Redis is sent before the stream ends, even when Envoy half-closes at once', async () => {
    const redis = await startRedis();
    group.track(redis);
    const { client } = await service(redis, writePolicy(policy(3, 'open')), 1_000);
    const stream = (client.extProc as unknown as { Process(): grpc.ClientDuplexStream<object, Record<string, unknown>> }).Process();
    const replies: string[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('data', (reply) => replies.push(Object.keys(reply).filter((key) => reply[key] !== undefined && key !== 'response' && key !== 'mode_override').join(',')));
    stream.on('error', () => undefined);
    const headers = Object.entries(customer('acme')).map(([key, value]) => ({ key, raw_value: Buffer.from(value) }));
    stream.write({ request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/chat') }, ...headers] }, end_of_stream: true } });
    stream.end();
    const status = await ended;
    expect(status.code).toBe(grpc.status.OK);
    expect(replies).toEqual(['request_headers']);
  });
});
