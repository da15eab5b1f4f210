/**
 * GENOPS_REDIS_URL=rediss+cluster://:<password>@…: a real Redis Cluster with TLS on every port
 * (clients, replication, cluster bus) and a password, reached by service processes the way a
 * deployment does (the CA through NODE_EXTRA_CA_CERTS, the password in the URL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../support/index.js';
import { createServiceGroup, writePolicyFile } from '../support/service-group.js';
import { startRedisCluster, type RunningRedisCluster } from '../support/start-redis-cluster.js';

const PASSWORD = 'p@ss:w/rd';
const policy = `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: cluster-tls }
spec:
  context: { required: [team, customerId] }
  teams: { ml-platform: {} }
  rateLimits:
    - name: per-customer
      key: [customerId]
      capacity: 5
      refill: { amount: 5, every: 1h }
      failureMode: closed
`;
const customer = (id: string) => ({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': id });

describe('a TLS Redis Cluster with a password', () => {
  let pki: TestPki;
  let cluster: RunningRedisCluster;
  let policyPath: string;
  const group = createServiceGroup();
  beforeAll(async () => {
    pki = createTestPki([]);
    cluster = await startRedisCluster({ password: PASSWORD, tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey } });
    policyPath = writePolicyFile(policy, 'genops-cluster-tls-');
  }, 60_000);
  afterAll(async () => {
    await group.stop();
    await cluster?.stop();
  });

  const service = (url: string) => group.start({ policyPath, env: { GENOPS_REDIS_URL: url, GENOPS_REDIS_TIMEOUT_MS: '1000', NODE_EXTRA_CA_CERTS: pki.ca, LOG_LEVEL: 'warn' } });

  it('two service processes share one bucket through it', async () => {
    expect(cluster.url).toMatch(/^rediss\+cluster:\/\/:p%40ss%3Aw%2Frd@127\.0\.0\.1:\d+,/);
    const [first, second] = [await service(cluster.url), await service(cluster.url)];
    // Until a process has connected, the closed limit refuses: wait for both to answer from the cluster.
    let warm = 0;
    for (const { client } of [first, second]) {
      await expect.poll(async () => (await client.check(customer(`warm-${warm++}`))).status.code, { timeout: 15_000, interval: 200 }).toBe(0);
    }
    const responses = await Promise.all(Array.from({ length: 12 }, (_, index) => (index % 2 === 0 ? first : second).client.check(customer('acme'))));
    expect(responses.filter((response) => response.status.code === 0)).toHaveLength(5);
    expect(responses.filter((response) => Number(response.denied_response?.status.code) === 429)).toHaveLength(7);
  });

  it('a wrong password or plaintext to TLS ports never reaches it: a closed limit refuses with 503, the service keeps serving', async () => {
    const ports = cluster.nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
    for (const url of [`rediss+cluster://:wrong@${ports}`, `redis+cluster://:${encodeURIComponent(PASSWORD)}@${ports}`]) {
      const { service: started, client } = await service(url);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const response = await client.check(customer('acme'));
      expect(Number(response.denied_response?.status.code), url).toBe(503);
      expect(JSON.parse(response.denied_response!.body)).toMatchObject({ reason_code: 'x_rate_limit_unavailable' });
      expect(started.process.exitCode).toBeUndefined();
    }
  });
});
