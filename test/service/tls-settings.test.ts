/**
 * TLS on the service's own ports: every bad combination or file stops the
 * start with one line naming the setting or file at fault; a running service
 * serves renewed certificates on both TLS paths and still drains on SIGTERM.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_ENTRY } from '../../src/demo/repo-root.js';
import { createGovernanceClient } from '../support/governance-client.js';
import { createTestPki, startService } from '../support/index.js';

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

describe('TLS on the gRPC port, by grpc-js credentials (no allow-list) and by the allow-list listener', () => {
  const ENVOY = 'spiffe://cluster.local/ns/genops/sa/envoy';
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'genops-tls-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['mTLS without an allow-list (grpc-js certificate-provider credentials)', {}],
    ['mTLS with an allow-list (connection-level check)', { GENOPS_TLS_CLIENT_ALLOW: ENVOY }],
  ])('%s: serves a renewed certificate without a restart, and SIGTERM still drains to exit 0', async (_name, extra) => {
    const cert = join(dir, `${randomUUID()}.crt`);
    const key = join(dir, `${randomUUID()}.key`);
    copyFileSync(pki.serverCert, cert);
    copyFileSync(pki.serverKey, key);
    const service = await startService({ env: { GENOPS_TLS_CERT: cert, GENOPS_TLS_KEY: key, GENOPS_TLS_CLIENT_CA: pki.ca, GENOPS_TLS_RELOAD_INTERVAL_MS: '200', ...extra } });
    const credentials = () => grpc.credentials.createSsl(readFileSync(pki.ca), readFileSync(client.key), readFileSync(client.cert));
    const check = async () => {
      const governance = createGovernanceClient(`127.0.0.1:${service.grpcPort}`, credentials());
      try {
        return await governance.check({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' });
      } finally {
        governance.close();
      }
    };
    try {
      expect((await check()).status.code).toBe(0);
      const renewed = pki.reissueServerCertificate();
      copyFileSync(renewed.cert, cert);
      copyFileSync(renewed.key, key);
      const expected = new X509Certificate(readFileSync(renewed.cert)).fingerprint256;
      const deadline = Date.now() + 5_000;
      while ((await servedFingerprint(service.grpcPort)) !== expected) {
        if (Date.now() > deadline) throw new Error('the renewed certificate was not served within 5 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect((await check()).status.code).toBe(0);
    } finally {
      expect(await service.stop()).toBe(0);
    }
  }, 20_000);

  function servedFingerprint(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(pki.ca), cert: readFileSync(client.cert), key: readFileSync(client.key), ALPNProtocols: ['h2'] }, () => {
        resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
        socket.destroy();
      });
      socket.once('error', reject);
    });
  }
});
