/**
 * Identity you can trust, through the real Envoy booted with the shipped
 * deploy/envoy/ext-authz-jwt.yaml: jwt_authn verifies tokens signed with keys
 * this test makes (jose), the service binds the governance context to the
 * verified claims, and Envoy calls the service over mTLS with the test PKI.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  findEnvoy,
  freePort,
  httpRequest,
  placeholdersOf,
  renderEnvoyConfig,
  REPO_ROOT,
  startGovernanceStack,
  startUpstream,
  type EchoBody,
  type EnvoyMode,
  type GovernanceStack,
  type HttpResponse,
  type TestPki,
  type Upstream,
} from '../support/index.js';
import { createGovernanceClient } from '../support/governance-client.js';

const ISSUER = 'https://auth.genops.test';
const AUDIENCE = 'genops-mesh';
const ENVOY_IDENTITY = 'spiffe://cluster.local/ns/genops/sa/envoy-gateway';
const OUTSIDER_IDENTITY = 'spiffe://cluster.local/ns/other/sa/intruder';

const project = { 'x-genops-project': 'chatbot' };

describeIdentity('ext-authz', 'deploy/envoy/ext-authz-jwt.yaml', { full: true });
describeIdentity('ext-proc', 'deploy/envoy/ext-proc-jwt.yaml', { full: false });

/**
 * `full`: also the checks of the service's own ports (allow-list, forward auth, rotation), which
 * do not depend on the Envoy filter and run once.
 */
function describeIdentity(mode: EnvoyMode, config: string, { full }: { full: boolean }): void {
  describe(`identity through ${config}: jwt_authn in front of genops-mesh, mTLS to the service`, () => {
    let pki: TestPki;
    let dir: string;
    let upstream: Upstream;
    let stack: GovernanceStack;
    let forwardAuthPort: number;
    let signingKey: CryptoKey;
    let strangerKey: CryptoKey;
    const tlsFiles = { cert: '', key: '' };

    const sign = (claims: Record<string, unknown>, options: { key?: CryptoKey; expiresAt?: number; issuedAt?: number } = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'test-key' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject('alice')
        .setIssuedAt(options.issuedAt ?? now)
        .setExpirationTime(options.expiresAt ?? now + 600)
        .sign(options.key ?? signingKey);
    };
    const teamA = () => sign({ groups: ['employees', 'ml-platform'], customer_id: 'acme' });
    const send = (headers: Record<string, string>, path = '/v1/messages') => httpRequest(`${stack.url}${path}`, { headers });
    const decisionsCounted = async () => {
      const metrics = await httpRequest(`${stack.service.adminUrl}/metrics`);
      return metrics.body
        .split('\n')
        .filter((line) => line.startsWith('genops_requests_total{'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
    };

    beforeAll(async () => {
      pki = createTestPki([ENVOY_IDENTITY, OUTSIDER_IDENTITY]);
      dir = mkdtempSync(join(tmpdir(), 'genops-identity-'));
      const keys = await generateKeyPair('ES256');
      signingKey = keys.privateKey;
      strangerKey = (await generateKeyPair('ES256')).privateKey;
      const jwks = join(dir, 'jwks.json');
      writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' }] }));

      const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
      // The rotation test sends hundreds of requests for one customer: no per-customer bucket here.
      policy.spec.rateLimits = [];
      policy.spec.identity = {
        jwt: { metadataKey: 'jwt_payload', issuers: [ISSUER], audiences: [AUDIENCE] },
        required: { paths: ['/v1/'] },
        claims: { team: { claim: 'groups', mode: 'must-match' }, customerId: { claim: 'customer_id', mode: 'claim-wins' } },
      };
      const policyPath = join(dir, 'policy.yaml');
      writeFileSync(policyPath, stringify(policy));

      // The service serves copies, so the rotation test can replace them.
      tlsFiles.cert = join(dir, 'tls.crt');
      tlsFiles.key = join(dir, 'tls.key');
      copyFileSync(pki.serverCert, tlsFiles.cert);
      copyFileSync(pki.serverKey, tlsFiles.key);
      forwardAuthPort = await freePort();
      upstream = await startUpstream();
      const envoyClient = pki.clients.get(ENVOY_IDENTITY)!;
      stack = await startGovernanceStack({
        mode,
        config,
        upstreamPort: upstream.port,
        policyPath,
        serviceEnv: {
          LOG_LEVEL: 'debug',
          GENOPS_FORWARD_AUTH_PORT: String(forwardAuthPort),
          GENOPS_TLS_CERT: tlsFiles.cert,
          GENOPS_TLS_KEY: tlsFiles.key,
          GENOPS_TLS_CLIENT_CA: pki.ca,
          GENOPS_TLS_CLIENT_ALLOW: `${ENVOY_IDENTITY}, spiffe://cluster.local/ns/genops/sa/istio-*`,
          GENOPS_TLS_RELOAD_INTERVAL_MS: '200',
        },
        envoyVars: {
          JWT_ISSUER: ISSUER,
          JWT_AUDIENCE: AUDIENCE,
          JWT_JWKS_PATH: jwks,
          GENOPS_TLS_CA: pki.ca,
          GENOPS_TLS_CERT: envoyClient.cert,
          GENOPS_TLS_KEY: envoyClient.key,
          GENOPS_TLS_SERVER_NAME: 'localhost',
        },
      });
    });
    afterAll(async () => {
      await stack?.stop();
      await upstream?.stop();
      pki?.remove();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('is accepted by `envoy --mode validate` with only its placeholders filled in, all documented', async () => {
      const template = readFileSync(join(REPO_ROOT, config), 'utf8');
      const readme = readFileSync(join(REPO_ROOT, 'deploy/envoy/README.md'), 'utf8');
      for (const name of placeholdersOf(template)) expect(readme).toContain(`\${${name}}`);
      const rendered = join(dir, 'validate.yaml');
      const client = pki.clients.get(ENVOY_IDENTITY)!;
      writeFileSync(rendered, renderEnvoyConfig(template, {
        LISTENER_HOST: '0.0.0.0', LISTENER_PORT: 10000, ADMIN_PORT: 9901, GENOPS_HOST: 'genops-mesh.genops.svc', GENOPS_PORT: 9001, UPSTREAM_HOST: 'ai.internal', UPSTREAM_PORT: 8080,
        JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_JWKS_PATH: join(dir, 'jwks.json'), GENOPS_TLS_CA: pki.ca, GENOPS_TLS_CERT: client.cert, GENOPS_TLS_KEY: client.key, GENOPS_TLS_SERVER_NAME: 'genops-mesh.genops.svc',
      }, config));
      const { stdout } = await promisify(execFile)(findEnvoy(), ['--mode', 'validate', '-c', rendered, '--log-level', 'error']);
      expect(stdout).toContain('OK');
    });

    it('lets a token for team A with header team A through; the claim wins for the customer id', async () => {
      const response = await send({ authorization: `Bearer ${await teamA()}`, 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'someone-else', ...project });
      expect(response.status, response.body).toBe(200);
      const seen = response.json<EchoBody>().headers;
      expect(seen['x-genops-team']).toBe('ml-platform');
      expect(seen['x-genops-customer-id']).toBe('acme');
      // jwt_authn removed the token (forward: false) and wrote the verified payload header.
      expect(seen.authorization).toBeUndefined();
      expect(JSON.parse(Buffer.from(String(seen['x-jwt-payload']), 'base64url').toString())).toMatchObject({ sub: 'alice', groups: ['employees', 'ml-platform'] });
      const logged = () => stack.service.logs().find((line) => line.event === 'decision' && line.decision_id === response.header('x-genops-decision-id'));
      await eventually(() => logged() !== undefined, 'the decision log line');
      const decision = logged();
      expect(decision).toMatchObject({
        result: 'ALLOWED',
        identity: {
          source: 'jwt_metadata',
          issuer: ISSUER,
          subject: 'alice',
          bindings: [
            { field: 'team', from: 'claim groups', mode: 'must-match', result: 'matched' },
            { field: 'customerId', from: 'claim customer_id', mode: 'claim-wins', result: 'replaced' },
          ],
        },
      });
      expect(JSON.stringify(decision)).not.toContain('eyJ'); // no token, no payload header in the log
    });

    it('refuses header team B with a token for team A: 403 x_identity_mismatch', async () => {
      const response = await send({ authorization: `Bearer ${await teamA()}`, 'x-genops-team': 'product-team', ...project });
      expect(response.status, response.body).toBe(403);
      expect(response.json()).toMatchObject({ error: 'forbidden', reason_code: 'x_identity_mismatch', message: 'x-genops-team product-team does not match the token claim groups' });
    });

    it('refuses a request without a token where one is required: 401 with WWW-Authenticate', async () => {
      const response = await send({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', ...project });
      expect(response.status, response.body).toBe(401);
      expect(response.header('www-authenticate')).toBe('Bearer realm="genops-mesh"');
      expect(response.json()).toMatchObject({ error: 'unauthorized', reason_code: 'x_identity_required' });
    });

    it('ignores a forged payload header on a request without a token (the config removes it before jwt_authn)', async () => {
      const forged = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, groups: ['ml-platform'], customer_id: 'acme' })).toString('base64url');
      const response = await send({ 'x-jwt-payload': forged, 'x-genops-team': 'ml-platform', ...project });
      expect(response.status, response.body).toBe(401);
      expect(response.json()).toMatchObject({ reason_code: 'x_identity_required' });
    });

    it('never lets an expired or wrongly signed token reach the service: Envoy answers 401 itself', async () => {
      const before = await decisionsCounted();
      const now = Math.floor(Date.now() / 1000);
      const expired = await sign({ groups: ['ml-platform'], customer_id: 'acme' }, { issuedAt: now - 7200, expiresAt: now - 3600 });
      const stranger = await sign({ groups: ['ml-platform'], customer_id: 'acme' }, { key: strangerKey });
      const responses: HttpResponse[] = [];
      for (const token of [expired, stranger]) responses.push(await send({ authorization: `Bearer ${token}`, 'x-genops-team': 'ml-platform', ...project }));
      expect(responses.map((response) => response.status)).toEqual([401, 401]);
      expect(responses[0]!.body).toBe('Jwt is expired');
      expect(responses[1]!.body).toBe('Jwt verification fails');
      for (const response of responses) expect(response.header('x-genops-decision-id')).toBeUndefined();
      expect(await decisionsCounted()).toBe(before);
    });

    if (full) {
      it('refuses a header for a bound field without a token even outside spec.identity.required.paths', async () => {
        // team is bound must-match: without a token the header cannot be checked on any path.
        const response = await send({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', ...project }, '/healthz-upstream');
        expect(response.status).toBe(401);
        expect(response.json()).toMatchObject({ reason_code: 'x_identity_required', message: 'x-genops-team is bound to the token claim groups: a verified identity (bearer token) is required' });
      });

      describe('the gRPC port over mTLS', () => {
        const address = () => `127.0.0.1:${stack.service.grpcPort}`;
        const ssl = (identity?: string) => {
          const client = identity ? pki.clients.get(identity)! : undefined;
          return grpc.credentials.createSsl(readFileSync(pki.ca), client ? readFileSync(client.key) : null, client ? readFileSync(client.cert) : null);
        };
        const checkWith = async (credentials: grpc.ChannelCredentials) => {
          const client = createGovernanceClient(address(), credentials);
          try {
            return await client.check({ 'x-genops-team': 'ml-research', 'x-genops-customer-id': 'acme', ...project });
          } finally {
            client.close();
          }
        };

        it('answers an allowed client certificate (the one Envoy uses)', async () => {
          const response = await checkWith(ssl(ENVOY_IDENTITY));
          // No token on this direct call: the policy answers, which is the point (the call got through).
          expect(response.denied_response?.status.code).toBe(401);
        });

        it('refuses a certificate the CA signed whose identity is not on the allow-list: PERMISSION_DENIED', async () => {
          await expect(checkWith(ssl(OUTSIDER_IDENTITY))).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: `client identity ${OUTSIDER_IDENTITY} is not allowed to call genops-mesh` });
          await eventually(() => stack.service.logs().some((line) => line.event === 'client_refused' && JSON.stringify(line.identities) === JSON.stringify([OUTSIDER_IDENTITY])), 'the client_refused log line');
        });

        it('refuses a client without a certificate, and a plaintext client', async () => {
          await expect(checkWith(ssl())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
          await expect(checkWith(grpc.credentials.createInsecure())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
        });
      });

      describe('the forward-auth port over mTLS', () => {
        const forwardAuth = (identity?: string) => {
          const client = identity ? pki.clients.get(identity) : undefined;
          return httpRequest(`https://127.0.0.1:${forwardAuthPort}/forward-auth`, {
            headers: { 'x-genops-team': 'ml-platform', 'x-original-uri': '/internal/x', ...project },
            tls: { ca: pki.ca, ...(client ? { cert: client.cert, key: client.key } : {}) },
          });
        };
        it('answers an allowed client, refuses one outside the allow-list with 403 and one without a certificate at the handshake', async () => {
          // Forward auth carries no Envoy metadata: a bound team without a token is 401, from the policy.
          expect((await forwardAuth(ENVOY_IDENTITY)).status).toBe(401);
          const outsider = await forwardAuth(OUTSIDER_IDENTITY);
          expect(outsider.status).toBe(403);
          expect(outsider.json()).toEqual({ error: 'forbidden', message: 'this client certificate is not allowed to call genops-mesh' });
          await expect(forwardAuth()).rejects.toThrow();
        });
      });

      it('rotates the service certificate under traffic without a failed request', async () => {
        const token = await teamA();
        const headers = { authorization: `Bearer ${token}`, 'x-genops-team': 'ml-platform', ...project };
        const agent = new Agent({ keepAlive: true, maxSockets: 4 });
        const failures: string[] = [];
        let through = 0;
        let direct = 0;
        let running = true;
        const throughEnvoy = async () => {
          while (running) {
            const response = await httpRequest(`${stack.url}/v1/messages`, { headers, agent }).catch((error: Error) => ({ status: 0, body: error.message }) as HttpResponse);
            if (response.status !== 200) failures.push(`envoy ${response.status} ${response.body}`);
            through++;
          }
        };
        // New channels, so every call makes a new TLS handshake against whatever certificate is served.
        const directCalls = async () => {
          while (running) {
            const client = createGovernanceClient(`127.0.0.1:${stack.service.grpcPort}`, grpc.credentials.createSsl(readFileSync(pki.ca), readFileSync(pki.clients.get(ENVOY_IDENTITY)!.key), readFileSync(pki.clients.get(ENVOY_IDENTITY)!.cert)));
            await client.check({ 'x-genops-team': 'ml-platform' }).catch((error: Error) => failures.push(`direct ${error.message}`));
            client.close();
            direct++;
          }
        };
        const load = [throughEnvoy(), throughEnvoy(), directCalls()];
        const servedBefore = await servedCertificate(stack.service.grpcPort, pki.clients.get(ENVOY_IDENTITY)!);
        await sleep(500);
        const renewed = pki.reissueServerCertificate();
        // A naive writer: the new key first, the certificate a moment later. In between the pair does
        // not match; the last good pair must stay in force.
        copyFileSync(renewed.key, tlsFiles.key);
        await sleep(600);
        copyFileSync(renewed.cert, tlsFiles.cert);
        const expected = new X509Certificate(readFileSync(renewed.cert)).fingerprint256;
        const deadline = Date.now() + 5_000;
        while ((await servedCertificate(stack.service.grpcPort, pki.clients.get(ENVOY_IDENTITY)!)) !== expected && Date.now() < deadline) await sleep(100);
        await sleep(500);
        running = false;
        await Promise.all(load);
        agent.destroy();

        expect(servedBefore).not.toBe(expected);
        expect(await servedCertificate(stack.service.grpcPort, pki.clients.get(ENVOY_IDENTITY)!)).toBe(expected);
        expect(failures).toEqual([]);
        expect(through).toBeGreaterThan(50);
        expect(direct).toBeGreaterThan(10);
        const events = stack.service.logs().map((line) => line.event);
        expect(events).toContain('tls_reload_rejected');
        expect(events).toContain('tls_reloaded');
      }, 30_000);
    }
  });
}

/** The SHA-256 fingerprint of the certificate a fresh TLS connection to `port` is served. */
function servedCertificate(port: number, client: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['h2'], cert: readFileSync(client.cert), key: readFileSync(client.key) }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Log lines reach stdout asynchronously (pino): wait for one instead of racing it. */
async function eventually(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
