/** The settings an operator vouches with: payload-header trust, the admin token, one replica. */
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings/settings.js';

describe('trust settings', () => {
  it('defaults to trusting no payload header, /budgets off, replicas possible', () => {
    const { trust, metricsLabelIdleMs } = loadSettings([], {});
    expect([...trust.trustPayloadHeader]).toEqual([]);
    expect(trust.adminToken).toBeUndefined();
    expect(trust.singleReplica).toBe(false);
    expect(metricsLabelIdleMs).toBe(300_000);
  });

  it('reads the adapters, the token and the acknowledgement', () => {
    const { trust } = loadSettings(['--single-replica', 'TRUE'], { GENOPS_TRUST_PAYLOAD_HEADER: 'forward_auth, ext_proc', GENOPS_ADMIN_TOKEN: 'a-long-enough-admin-token' });
    expect([...trust.trustPayloadHeader].sort()).toEqual(['ext_proc', 'forward_auth']);
    expect(trust.adminToken).toBe('a-long-enough-admin-token');
    expect(trust.singleReplica).toBe(true);
  });

  it('refuses bad values with one line naming the variable, never echoing the token', () => {
    expect(() => loadSettings([], { GENOPS_TRUST_PAYLOAD_HEADER: 'ext_authz,istio' })).toThrow('GENOPS_TRUST_PAYLOAD_HEADER=ext_authz,istio: "istio" is not one of ext_authz, ext_proc, forward_auth');
    expect(() => loadSettings([], { GENOPS_ADMIN_TOKEN: 'short-secret' })).toThrow(/^GENOPS_ADMIN_TOKEN: must be at least 16 printable characters without spaces$/);
    expect(() => loadSettings([], { GENOPS_ADMIN_TOKEN: 'has a space in the middle' })).toThrow('GENOPS_ADMIN_TOKEN: must be');
    expect(() => loadSettings([], { GENOPS_SINGLE_REPLICA: 'yes' })).toThrow('GENOPS_SINGLE_REPLICA=yes: must be true or false');
    expect(() => loadSettings([], { GENOPS_METRICS_LABEL_IDLE_MS: '10' })).toThrow('GENOPS_METRICS_LABEL_IDLE_MS=10: must be an integer from 1000 to 86400000');
  });
});
