/**
 * The default policy's per-customer limit through the real Envoy, in both
 * modes, with the buckets kept in a real Redis (GENOPS_REDIS_URL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { describePerCustomerRateLimit, useEnvoyStack } from './envoy-scenarios.js';

describe.each(['ext-authz', 'ext-proc'] as const)('%s: per-customer rate limit shared through Redis', (mode) => {
  let redis: RunningRedis | undefined;
  beforeAll(async () => {
    redis = await startRedis();
  });
  // A roomy Redis timeout: under a loaded test machine the 50 ms default could fail open,
  // and this suite is about the shared bucket, not the failure mode (tested elsewhere).
  const envoy = useEnvoyStack(mode, { serviceEnv: () => ({ GENOPS_REDIS_URL: redis!.url, GENOPS_REDIS_TIMEOUT_MS: '1000' }) });
  afterAll(async () => {
    await redis?.stop();
  });
  describePerCustomerRateLimit(envoy);

  it('kept those buckets in Redis, not in the service', async () => {
    const keys = await redis!.client().keys('genops:rl:*');
    expect(keys.length).toBeGreaterThanOrEqual(2);
    expect(keys.every((key) => key.startsWith('genops:rl:{per-customer:customerId|cust-'))).toBe(true);
  });
});
