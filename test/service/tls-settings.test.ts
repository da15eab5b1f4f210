/**
 * TLS settings of the service's own ports: every bad combination or file
 * stops the start with one line naming the setting or file at fault.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { SERVICE_ENTRY } from '../../src/demo/repo-root.js';
import { createTestPki } from '../support/index.js';

const pki = createTestPki(['spiffe://cluster.local/ns/genops/sa/envoy']);
const client = [...pki.clients.values()][0]!;
afterAll(() => pki.remove());

function startFailing(env: Record<string, string>, args: string[] = []) {
  const result = spawnSync(process.execPath, [SERVICE_ENTRY, ...args], {
    env: { PATH: process.env.PATH, GENOPS_GRPC_PORT: '0', GENOPS_ADMIN_PORT: '0', GENOPS_LISTEN_HOST: '127.0.0.1', OTEL_SDK_DISABLED: 'true', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('TLS start-up errors', () => {
  it.each([
    [{ GENOPS_TLS_CERT: pki.serverCert }, [], 'GENOPS_TLS_KEY is not set: TLS needs both a certificate (GENOPS_TLS_CERT) and its private key (GENOPS_TLS_KEY)'],
    [{}, ['--tls-key', pki.serverKey], 'GENOPS_TLS_CERT is not set: TLS needs both a certificate (GENOPS_TLS_CERT) and its private key (--tls-key)'],
    [{ GENOPS_TLS_CLIENT_CA: pki.ca }, [], 'GENOPS_TLS_CLIENT_CA needs TLS: set GENOPS_TLS_CERT and GENOPS_TLS_KEY as well'],
    [{ GENOPS_TLS_CERT: pki.serverCert, GENOPS_TLS_KEY: pki.serverKey }, ['--tls-client-allow', 'spiffe://x/y'], '--tls-client-allow needs client certificates: set GENOPS_TLS_CLIENT_CA to the CA that signs them'],
    [{ GENOPS_TLS_CERT: pki.serverCert, GENOPS_TLS_KEY: pki.serverKey, GENOPS_TLS_RELOAD_INTERVAL_MS: '5' }, [], 'GENOPS_TLS_RELOAD_INTERVAL_MS=5: must be an integer from 100 to 86400000 (milliseconds)'],
    [{ GENOPS_TLS_CERT: '/nonexistent/tls.crt', GENOPS_TLS_KEY: pki.serverKey }, [], 'cannot read the TLS certificate (GENOPS_TLS_CERT) /nonexistent/tls.crt: ENOENT'],
  ])('%j %j exits 2 naming the setting', (env, args, message) => {
    const { status, stderr } = startFailing(env as Record<string, string>, args as string[]);
    expect(status).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain(message);
  });

  it('a certificate and a key that do not belong together exit 2 naming both files', () => {
    const { status, stderr } = startFailing({ GENOPS_TLS_CERT: pki.serverCert, GENOPS_TLS_KEY: client.key });
    expect(status).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`^genops-mesh: TLS files ${pki.serverCert}, ${client.key}: .*key values mismatch`));
  });
});
