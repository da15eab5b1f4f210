/**
 * The hostile client against the one-round-trip route (`undecided`, FULL_DUPLEX_STREAMED request
 * bodies) of the shipped deploy/envoy/ext-proc.yaml, through the real Envoy: every way found to
 * reach the upstream undecided, to make the body the upstream receives differ from the body the
 * service decided on, to slip past the route's matchers, or to hold the service's memory. Each
 * request is sent raw (its framing as written); the upstream records what arrived.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectHttp2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, startEnvoy, startGovernanceStack, startService, startStubLlm, startUpstream, type GovernanceStack, type RunningEnvoy, type RunningService, type StubLlm, type Upstream } from '../support/index.js';
import { eventually, scrape } from '../telemetry/telemetry-support.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/envoy/envoy-messages.js';
import type { ExtProcReplies, ExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { startGrpcServer, type GrpcServer } from '../../src/server/grpc-server.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { writeDefaultPolicy } from '../support/default-policy.js';
import { context } from '../support/request-context.js';
import { rawRequest, refusal } from './hostile-support.js';

const TEST_ID = 'x-test-id';
/** basic customers may not use claude-opus (deploy/default-policy.yaml); claude-sonnet is fine. */
const BASIC = { 'x-genops-customer-tier': 'basic' };
const OPUS = JSON.stringify({ model: 'claude-opus-4-1-20250805', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] });
const SONNET = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] });
/** The start of a JSON AI body that pads on (and on) until the client stops. */
const PAD_START = '{"model":"claude-sonnet-4-5","pad":"';
/** The policy's body limit here (small, so that holding it is cheap to test). */
const BODY_LIMIT = 256 * 1024;

/** Raw bytes on one TCP connection; resolves with everything Envoy sent back once it closes or `waitMs` passes. */
function rawExchange(port: number, write: (socket: Socket) => void | Promise<void>, waitMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', done);
    socket.on('error', (error) => (chunks.length > 0 ? done() : reject(error)));
    socket.on('connect', () => void Promise.resolve(write(socket)).catch(reject));
  });
}

const head = (path: string, headers: Record<string, string>, lines: string[] = []) =>
  [`POST ${path} HTTP/1.1`, 'host: ai.example', ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), ...lines, '', ''].join('\r\n');
const statuses = (raw: string) => [...raw.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((match) => Number(match[1]));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('hostile clients against the one-round-trip route (deploy/envoy/ext-proc.yaml)', () => {
  let dir: string;
  let upstream: Upstream;
  let service: RunningService;
  let envoy: RunningEnvoy;
  let port: number;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-hostile-1rtt-'));
    const policyPath = writeDefaultPolicy(dir, 'policy.yaml', (spec) => {
      spec.usage = { maxRequestBodyBytes: BODY_LIMIT, headersOnly: [{ prefix: '/v1/files', description: 'uploads: team and limits only' }] };
    });
    upstream = await startUpstream();
    service = await startService({ policyPath });
    envoy = await startEnvoy({ config: 'deploy/envoy/ext-proc.yaml', vars: { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_PORT: upstream.port } });
    port = Number(new URL(envoy.url).port);
  });
  afterAll(async () => {
    await envoy?.stop();
    await service?.stop();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const received = (testId: string) => upstream.requestsWith(TEST_ID, testId);
  const neverUndecided = () => {
    for (const request of upstream.requests) expect(request.headers['x-routed-by'], request.path).not.toBe('undecided');
  };

  describe('the route matchers: case, parameters, look-alike types, duplicates and empty values', () => {
    const variants: [string, Record<string, string | string[]>][] = [
      ['Application/JSON; charset=UTF-8', { 'content-type': 'Application/JSON; charset=UTF-8' }],
      ['application/json-seq', { 'content-type': 'application/json-seq' }],
      ['application/jsonl', { 'content-type': 'application/jsonl' }],
      ['text/plain (a JSON AI body under another type: two round trips)', { 'content-type': 'text/plain' }],
      ['no content-type at all', {}],
      ['two content-type headers', { 'content-type': ['text/plain', 'application/json'] }],
      ['x-amz-date empty', { 'content-type': 'application/json', 'x-amz-date': '' }],
      ['x-genops-decision-id empty', { 'content-type': 'application/json', 'x-genops-decision-id': '' }],
    ];
    it.each(variants)('%s: the forbidden model is refused, the allowed one reaches its tier route', async (_name, type) => {
      const testId = randomUUID();
      const headers = { ...context(BASIC), ...type, [TEST_ID]: testId };
      refusal(await rawRequest(port, 'POST', '/v1/messages', headers, OPUS), 403, 'POLICY_DENY_MODEL');
      const allowed = await rawRequest(port, 'POST', '/v1/messages', headers, SONNET);
      expect(allowed.status, allowed.body).toBe(200);
      const [request, ...more] = received(testId);
      expect(more).toHaveLength(0);
      expect(request?.body).toBe(SONNET);
      expect(request?.headers['x-routed-by']).toBe('claude-sonnet');
      expect(request?.headers['x-genops-decision-id']).toBe(allowed.headers['x-genops-decision-id']);
      neverUndecided();
    });
  });

  it('a JSON POST allowed on its headers (a headers-only path) leaves the undecided route, its body echoed whole; one to any other path is refused', async () => {
    const testId = randomUUID();
    const body = JSON.stringify({ purpose: 'batch', note: 'x'.repeat(100_000) });
    const allowed = await rawRequest(port, 'POST', '/v1/files', { ...context(), 'content-type': 'application/json', [TEST_ID]: testId }, body);
    expect(allowed.status, allowed.body).toBe(200);
    const [request] = received(testId);
    expect(request?.body).toBe(body);
    expect(request?.headers['x-genops-decision-id']).toBe(allowed.headers['x-genops-decision-id']);
    refusal(await rawRequest(port, 'POST', '/v1/anything', { ...context(), 'content-type': 'application/json', [TEST_ID]: testId }, body), 403, 'x_unknown_ai_api');
    expect(received(testId)).toHaveLength(1);
    neverUndecided();
  });

  it('headers just under Envoy\'s limits, so that the decision\'s header mutation passes them: refused (431, or 503 when Envoy rejects the mutation), never forwarded undecided', async () => {
    const attempts: Record<string, string>[] = [
      Object.fromEntries(Array.from({ length: 90 }, (_, index) => [`x-filler-${index}`, 'v'])),
      { 'x-filler': 'a'.repeat(59 * 1024 + 700) },
    ];
    for (const extra of attempts) {
      const testId = randomUUID();
      for (const type of ['application/json', 'text/plain']) {
        const answer = await rawRequest(port, 'POST', '/v1/messages', { ...context(BASIC), 'content-type': type, [TEST_ID]: testId, ...extra }, SONNET);
        expect([431, 503], `${type} ${answer.status} ${answer.body}`).toContain(answer.status);
      }
      expect(received(testId)).toHaveLength(0);
    }
    const after = await rawRequest(port, 'POST', '/v1/messages', { ...context(BASIC), 'content-type': 'application/json' }, SONNET);
    expect(after.status, after.body).toBe(200);
    neverUndecided();
  });

  it('other methods with an AI body (lowercase post, PUT, PATCH) and HTTP/1.0: refused (4xx) or closed unanswered, the forbidden model never forwarded', async () => {
    const testId = randomUUID();
    const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, 'content-length': String(OPUS.length) };
    const answers: number[] = [];
    for (const method of ['post', 'PUT', 'PATCH']) {
      const raw = await rawExchange(port, (socket) => void socket.write(head('/v1/messages', headers).replace(/^POST/, method) + OPUS), 1_000);
      answers.push(statuses(raw)[0] ?? 0);
    }
    const http10 = await rawExchange(port, (socket) => void socket.end(head('/v1/messages', { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId }).replace('HTTP/1.1', 'HTTP/1.0') + OPUS), 1_000);
    // Envoy closes an HTTP/1.0 connection without an answer (accept_http_10 is off).
    expect(http10).not.toMatch(/^HTTP\/1\.[01] 2/);
    for (const status of answers) expect(status, answers.join(',')).toBeGreaterThanOrEqual(400);
    expect(received(testId)).toHaveLength(0);
  });

  it('HTTP/1.1 pipelining: an allowed request then a forbidden one on the same connection, written at once, are decided each on its own body', async () => {
    const testId = randomUUID();
    const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId };
    const first = head('/v1/messages', { ...headers, 'content-length': String(SONNET.length) }) + SONNET;
    const second = head('/v1/messages', { ...headers, 'content-length': String(OPUS.length) }) + OPUS;
    const raw = await rawExchange(port, (socket) => void socket.write(first + second), 3_000);
    expect(statuses(raw)).toEqual([200, 403]);
    expect(received(testId).map((request) => request.body)).toEqual([SONNET]);
    neverUndecided();
  });

  it('transfer-encoding chunked with a content-length (request smuggling shape): refused by Envoy, nothing upstream', async () => {
    const testId = randomUUID();
    const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, 'content-length': String(SONNET.length), 'transfer-encoding': 'chunked' };
    const raw = await rawExchange(port, (socket) => void socket.write(head('/v1/messages', headers) + `${OPUS.length.toString(16)}\r\n${OPUS}\r\n0\r\n\r\n`));
    expect(statuses(raw)[0]).toBe(400);
    expect(received(testId)).toHaveLength(0);
  });

  it('HTTP/1.1 chunked trailers carrying a second body: not read as body, the decided body alone goes upstream', async () => {
    const testId = randomUUID();
    const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, 'transfer-encoding': 'chunked' };
    const raw = await rawExchange(port, (socket) => void socket.write(head('/v1/messages', headers) + `${SONNET.length.toString(16)}\r\n${SONNET}\r\n0\r\nx-body: ${OPUS}\r\n\r\n`));
    expect(statuses(raw)).toEqual([200]);
    expect(received(testId).map((request) => request.body)).toEqual([SONNET]);
  });

  it('a body that ends before its content-length (the client closes): refused or dropped, nothing upstream; the service keeps serving', async () => {
    const testId = randomUUID();
    const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, 'content-length': String(SONNET.length + 100) };
    await rawExchange(port, (socket) => void socket.end(head('/v1/messages', headers) + SONNET), 1_500);
    await sleep(200);
    expect(received(testId)).toHaveLength(0);
    const after = await rawRequest(port, 'POST', '/v1/messages', { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId }, SONNET);
    expect(after.status, after.body).toBe(200);
  });

  it('Expect: 100-continue, then a forbidden body: decided on the body actually sent', async () => {
    const testId = randomUUID();
    const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, expect: '100-continue', 'content-length': String(OPUS.length) };
    const raw = await rawExchange(port, async (socket) => {
      socket.write(head('/v1/messages', headers));
      await sleep(200);
      socket.write(OPUS);
    });
    expect(statuses(raw)).toContain(403);
    expect(statuses(raw)).not.toContain(200);
    expect(received(testId)).toHaveLength(0);
  });

  it('an HTTP/2 stream reset mid-body: nothing upstream, and the connection\'s next stream is governed', async () => {
    const testId = randomUUID();
    const session = connectHttp2(envoy.url);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/v1/messages', 'content-type': 'application/json', ...context(BASIC), [TEST_ID]: testId });
      stream.on('error', () => undefined);
      stream.write(SONNET.slice(0, 20));
      await sleep(200);
      stream.close(8); // RST_STREAM CANCEL
      await sleep(300);
      expect(received(testId)).toHaveLength(0);
      const next = session.request({ ':method': 'POST', ':path': '/v1/messages', 'content-type': 'application/json', ...context(BASIC), [TEST_ID]: testId });
      const status = await new Promise<number>((resolve, reject) => {
        next.on('response', (headers) => resolve(Number(headers[':status'])));
        next.on('error', reject);
        next.end(OPUS);
      });
      expect(status).toBe(403);
      expect(received(testId)).toHaveLength(0);
    } finally {
      session.destroy();
    }
  });

  it('HTTP/2: a content-length that disagrees with the DATA sent, and two streams with the allowed and the forbidden body at once: refused or decided each on its own body', async () => {
    const testId = randomUUID();
    const session = connectHttp2(envoy.url);
    session.on('error', () => undefined);
    const send = (headers: Record<string, string>, body: string) =>
      new Promise<number>((resolve) => {
        const stream = session.request({ ':method': 'POST', ':path': '/v1/messages', 'content-type': 'application/json', ...context(BASIC), [TEST_ID]: testId, ...headers });
        stream.on('response', (answer) => resolve(Number(answer[':status'])));
        stream.on('error', () => resolve(0));
        stream.on('close', () => resolve(0));
        stream.resume();
        stream.end(body);
      });
    try {
      // content-length shorter, then longer, than the DATA: a stream error or a refusal, never forwarded.
      for (const length of [String(SONNET.length), '5', String(OPUS.length + 50)]) {
        const status = await send({ 'content-length': length }, OPUS);
        expect(status === 0 || status >= 400, `content-length ${length}: ${status}`).toBe(true);
      }
      const [allowed, refused] = await Promise.all([send({}, SONNET), send({}, OPUS)]);
      expect([allowed, refused]).toEqual([200, 403]);
    } finally {
      session.destroy();
    }
    expect(received(testId).map((request) => request.body)).toEqual([SONNET]);
  });

  describe('stalled and slow uploads', () => {
    /** Starts a JSON upload of `total` bytes, sends `sent` of them and stalls; resolves with the raw answer. */
    const stalledUpload = (testId: string, total: number, sent: number, waitMs: number) =>
      rawExchange(port, (socket) => {
        const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, 'content-length': String(total) };
        socket.write(head('/v1/messages', headers) + `${PAD_START}${'x'.repeat(sent - PAD_START.length)}`);
      }, waitMs);

    it('a client that stalls past 2 s is answered 408 by Envoy; one that sends a byte every 1.9 s is held and then decided on its whole body', async () => {
      const stalled = randomUUID();
      const startedAt = Date.now();
      const raw = await stalledUpload(stalled, 1000, 200, 5_000);
      expect(statuses(raw)).toEqual([408]);
      expect(Date.now() - startedAt).toBeLessThan(4_000);

      const slow = randomUUID();
      const body = `{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"Hi"}]}`;
      const slowRaw = await rawExchange(port, async (socket) => {
        const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: slow, 'content-length': String(body.length) };
        socket.write(head('/v1/messages', headers) + body.slice(0, 40));
        await sleep(1_900);
        socket.write(body.slice(40, 60));
        await sleep(1_900);
        socket.write(body.slice(60));
      }, 6_000);
      expect(statuses(slowRaw)).toEqual([200]);
      expect(received(slow).map((request) => request.body)).toEqual([body]);
      expect(received(stalled)).toHaveLength(0);
    });

    it('many stalled uploads at once, each near the body limit: the service keeps answering others, and lets go of every byte when Envoy ends them', async () => {
      const testId = randomUUID();
      const count = 24;
      const sent = BODY_LIMIT - 100;
      const held = async () => (await scrape(service.adminUrl)).value('genops_request_bodies_held_bytes', {});
      const uploads = Array.from({ length: count }, () => stalledUpload(testId, BODY_LIMIT, sent, 5_000));
      await sleep(500);
      const startedAt = Date.now();
      const other = await httpRequest(`${envoy.url}/v1/messages`, { method: 'POST', headers: { ...context(BASIC), 'content-type': 'application/json' }, body: SONNET });
      expect(other.status, other.body).toBe(200);
      expect(Date.now() - startedAt).toBeLessThan(1_000);
      // Every byte sent so far is held in the service (the body, less its request line and headers).
      expect(await held()).toBe(count * sent);
      const answers = await Promise.all(uploads);
      for (const raw of answers) expect(statuses(raw)).toEqual([408]);
      expect(received(testId)).toHaveLength(0);
      expect(await eventually(async () => ((await held()) === 0 ? true : undefined), 'the held bytes to be let go')).toBe(true);
    });
  });
});

describe('many uploads held at once past the service\'s bound (GENOPS_MAX_HELD_REQUEST_BYTES)', () => {
  let dir: string;
  let upstream: Upstream;
  let service: RunningService;
  let envoy: RunningEnvoy;
  let port: number;
  const HELD_BOUND = 2 * 1024 * 1024;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-hostile-1rtt-held-'));
    const policyPath = writeDefaultPolicy(dir, 'policy.yaml', (spec) => {
      spec.usage = { maxRequestBodyBytes: BODY_LIMIT };
    });
    upstream = await startUpstream();
    service = await startService({ policyPath, env: { GENOPS_MAX_HELD_REQUEST_BYTES: String(HELD_BOUND) } });
    envoy = await startEnvoy({ config: 'deploy/envoy/ext-proc.yaml', vars: { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_PORT: upstream.port } });
    port = Number(new URL(envoy.url).port);
  });
  afterAll(async () => {
    await envoy?.stop();
    await service?.stop();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds no more than its bound: lets go of the largest bodies (503 x_request_bodies_full on their next bytes), and keeps serving small requests', async () => {
    const testId = randomUUID();
    const count = 16;
    const sent = 200 * 1024;
    const startedAt = Date.now();
    const uploads = Array.from({ length: count }, () =>
      rawExchange(port, async (socket) => {
        const headers = { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId, 'content-length': String(BODY_LIMIT) };
        socket.write(head('/v1/messages', headers) + `${PAD_START}${'x'.repeat(sent - PAD_START.length)}`);
        // A few more bytes a second later: an upload let go meanwhile is answered then.
        await sleep(1_000);
        socket.write('x'.repeat(16));
      }, 5_000).then((raw) => ({ raw, ms: Date.now() - startedAt })),
    );
    await sleep(700);
    const small = await httpRequest(`${envoy.url}/v1/messages`, { method: 'POST', headers: { ...context(BASIC), 'content-type': 'application/json' }, body: SONNET });
    expect(small.status, small.body).toBe(200);
    const answers = await Promise.all(uploads);
    const refused = answers.filter(({ raw }) => statuses(raw)[0] === 503);
    const held = answers.filter(({ raw }) => statuses(raw)[0] === 408);
    expect(refused.length + held.length).toBe(count);
    // At most the bound's worth of these uploads is held until Envoy's idle timeout ends them.
    expect(held.length).toBeLessThanOrEqual(Math.floor(HELD_BOUND / sent));
    expect(refused.length).toBeGreaterThanOrEqual(count - Math.floor(HELD_BOUND / sent));
    for (const { raw } of refused) {
      expect(raw).toContain('"reason_code":"x_request_bodies_full"');
      expect(raw.toLowerCase()).toContain('retry-after: 1');
    }
    expect(received(testId)).toHaveLength(0);
    expect(service.logs().filter((line) => line.event === 'request_body_evicted').length).toBeGreaterThanOrEqual(refused.length);
    const metrics = await scrape(service.adminUrl);
    expect(metrics.value('genops_request_bodies_evicted_total', {})).toBeGreaterThanOrEqual(refused.length);
    expect(metrics.value('genops_request_bodies_held_bytes', {})).toBe(0);
  });

  const received = (testId: string) => upstream.requestsWith(TEST_ID, testId);
});

describe('money: clients that leave while their request is being decided or forwarded (budgets, real Envoy and stub provider)', () => {
  const ADMIN_TOKEN = 'hostile-1rtt-admin-token';
  let dir: string;
  let llm: StubLlm;
  let stack: GovernanceStack;
  let port: number;
  /** claude-sonnet-4-5 at $3 / $15 per million tokens: a body of B bytes with max_tokens 1000 reserves B x 3 + 1000 x 15 µUSD. */
  const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'Hello' }] });
  const worstUsd = (Buffer.byteLength(body) * 3 + 1000 * 15) / 1e6;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-hostile-1rtt-money-'));
    const policyPath = writeDefaultPolicy(dir, 'policy.yaml', (spec) => {
      spec.rateLimits = [];
      spec.pricing = { defaults: false, version: 'hostile-1rtt', models: [{ model: 'claude-sonnet-4-5', input: '3', output: '15' }] };
      spec.budgets = [{ name: 'project-daily', key: ['project'], selector: { teams: ['ml-platform'] }, amount: '1.00', period: 'daily', timeZone: 'UTC' }];
    });
    llm = await startStubLlm({ chunkDelayMs: 50 });
    stack = await startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath, serviceEnv: { GENOPS_ADMIN_TOKEN: ADMIN_TOKEN, LOG_LEVEL: 'debug' } });
    port = Number(new URL(stack.url).port);
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function account(project: string): Promise<{ spent_usd: number; reserved_usd: number } | undefined> {
    const document = (await (await fetch(`${stack.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
    return document.budgets.flatMap((budget) => budget.accounts).find((entry) => entry.key === project);
  }
  const send = (project: string, write: (socket: Socket, request: string) => void | Promise<void>) => {
    const headers = { ...context({ 'x-genops-project': project }), 'content-type': 'application/json', 'content-length': String(body.length) };
    return rawExchange(port, (socket) => write(socket, head('/v1/messages', headers)), 1_000);
  };

  it('a stream cut mid-upload is never decided: nothing reserved, nothing spent, the next request of the project is served', async () => {
    const project = `cut-${randomUUID().slice(0, 6)}`;
    await send(project, async (socket, request) => {
      socket.write(request + body.slice(0, 30));
      await sleep(100);
      socket.destroy();
    });
    await sleep(300);
    expect(stack.service.logs().filter((line) => line.event === 'decision' && line.project === project)).toHaveLength(0);
    expect((await account(project))?.reserved_usd ?? 0).toBe(0);
    const served = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), 'content-type': 'application/json' }, body });
    expect(served.status, served.body).toBe(200);
  });

  it('clients that leave right after the last byte of their body (decided or not, forwarded or not): every hold is released or charged, once', async () => {
    const projects = Array.from({ length: 8 }, (_, index) => `gone-${index}-${randomUUID().slice(0, 6)}`);
    await Promise.all(projects.map((project, index) => send(project, async (socket, request) => {
      socket.write(request + body);
      // Leave at once, or a little later: before the decision, between the decision and the upstream, or mid-answer.
      await sleep(index * 15);
      socket.destroy();
    })));
    for (const project of projects) {
      const settled = await eventually(async () => {
        const entry = await account(project);
        return entry === undefined || entry.reserved_usd === 0 ? (entry ?? { spent_usd: 0, reserved_usd: 0 }) : undefined;
      }, `the hold of ${project} to be settled`, 15_000);
      // Released (0) or charged the hold (the provider may bill all it was allowed): never more, never twice.
      expect([0, worstUsd].some((usd) => Math.abs(settled.spent_usd - usd) < 1e-9), `${project}: ${settled.spent_usd}`).toBe(true);
      const usageOf = () => stack.service.logs().filter((line) => line.event === 'usage' && line.project === project);
      // The usage line is written asynchronously, after the ledger settles: wait for it when money was charged.
      if (settled.spent_usd > 0) await eventually(() => (usageOf().length > 0 ? true : undefined), `the usage record of ${project}`, 5_000);
      const decisions = stack.service.logs().filter((line) => line.event === 'decision' && line.project === project);
      const usage = usageOf();
      expect(decisions.length).toBeLessThanOrEqual(1);
      expect(usage.length).toBeLessThanOrEqual(decisions.length);
      if (settled.spent_usd > 0) expect(usage).toHaveLength(1);
    }
  });
});

describe('a processor that lets a request through without deciding it (no decision id, no route refresh): the undecided route itself never reaches the upstream', () => {
  let upstream: Upstream;
  let server: GrpcServer;
  let envoy: RunningEnvoy;
  beforeAll(async () => {
    upstream = await startUpstream();
    // What an older or broken genops-mesh would answer on the one-round-trip route: CONTINUE, the body
    // echoed, but no x-genops-decision-id and no clear_route_cache.
    const careless: ExtProcSessionFactory = {
      open: () => ({
        replies(request: ProcessingRequest): ExtProcReplies {
          if (request.request_headers) return request.request_headers.end_of_stream ? { request_headers: { response: {} } } : [];
          if (request.request_body) {
            const echoed: ProcessingResponse = { request_body: { response: { body_mutation: { streamed_response: { body: request.request_body.body ?? Buffer.alloc(0), end_of_stream: request.request_body.end_of_stream === true } } } } };
            return request.request_body.end_of_stream ? [{ request_headers: { response: { status: 'CONTINUE' } } }, echoed] : [];
          }
          if (request.request_trailers) return { request_trailers: {} };
          return undefined;
        },
        handle: () => undefined,
        close: () => undefined,
        done: false,
      }),
    };
    server = await startGrpcServer({ host: '127.0.0.1', port: 0, authz: { check: () => ({}) as never }, extProc: careless, logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }) });
    envoy = await startEnvoy({ config: 'deploy/envoy/ext-proc.yaml', vars: { GENOPS_HOST: '127.0.0.1', GENOPS_PORT: server.port, UPSTREAM_PORT: upstream.port } });
  });
  afterAll(async () => {
    await envoy?.stop();
    await server?.drain(0);
    await upstream?.stop();
  });

  it('answers 503 from the route itself: nothing forwarded with x-routed-by undecided', async () => {
    const testId = randomUUID();
    const answer = await httpRequest(`${envoy.url}/v1/messages`, { method: 'POST', headers: { ...context(BASIC), 'content-type': 'application/json', [TEST_ID]: testId }, body: OPUS });
    expect(answer.status, answer.body).toBe(503);
    expect(upstream.requestsWith(TEST_ID, testId)).toHaveLength(0);
    for (const request of upstream.requests) expect(request.headers['x-routed-by']).not.toBe('undecided');
  });
});
