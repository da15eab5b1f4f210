/**
 * One round trip to decide, through the real Envoy booted with deploy/envoy/ext-proc.yaml: a POST
 * starts on the config's `undecided` route, whose ExtProcPerRoute mode (FULL_DUPLEX_STREAMED) sends
 * the body right behind the headers. The service's trace log shows what it received before its
 * first reply; the upstream shows what went through. Then every way around it a client could try
 * (no body, an empty body, HTTP/2 without content-length, chunked, Expect: 100-continue, forged
 * route and decision headers, a body model not allowed, a header-only identity denial, a body over
 * the limit, a signed request, a service that stops answering) is governed as in two round trips.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { connect, constants as http2 } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http2Request, httpRequest, startEnvoy, startService, startUpstream, type HttpResponse, type RecordedRequest, type RunningEnvoy, type RunningService, type Upstream } from '../support/index.js';
import { context, UUID } from '../support/request-context.js';
import { rawRequest } from './hostile-support.js';
import { decidingStreams as decidingStreamsOf, expectOneRoundTrip } from '../support/ext-proc-trace.js';

const TEST_ID = 'x-test-id';
const CHAT = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] });
const OPUS = JSON.stringify({ model: 'claude-opus-4-1-20250805', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] });

/** The service's per-stream trace (LOG_LEVEL=trace): each message it read and each reply it wrote, in order. */

function answerSlowly(request: RecordedRequest, response: ServerResponse): boolean {
  const delay = request.headers['x-slow-ms'];
  if (typeof delay !== 'string') return false;
  setTimeout(() => response.writeHead(200, { 'content-type': 'application/json' }).end('{"slow":true}'), Number(delay));
  return true;
}

describe('one round trip to decide (deploy/envoy/ext-proc.yaml)', () => {
  let upstream: Upstream;
  let service: RunningService;
  let envoy: RunningEnvoy;
  beforeAll(async () => {
    upstream = await startUpstream({ respond: answerSlowly });
    service = await startService({ env: { LOG_LEVEL: 'trace' } });
    envoy = await startEnvoy({ config: 'deploy/envoy/ext-proc.yaml', vars: { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_PORT: upstream.port } });
  });
  afterAll(async () => {
    await envoy?.stop();
    await service?.stop();
    await upstream?.stop();
  });

  const received = (testId: string) => upstream.requestsWith(TEST_ID, testId);
  const post = (testId: string, path: string, headers: Record<string, string>, body: string) =>
    httpRequest(`${envoy.url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', [TEST_ID]: testId }, body });

  const decidingStreams = (send: () => Promise<unknown>) => decidingStreamsOf(() => service.logs(), send, 100);

  it('decides a JSON AI request in one round trip: headers and body reach the service before it answers once, with both replies', async () => {
    const testId = randomUUID();
    let response: HttpResponse | undefined;
    const streams = await decidingStreams(async () => {
      response = await post(testId, '/v1/chat/completions', context(), CHAT);
    });
    expect(response?.status, response?.body).toBe(200);
    expect(streams).toHaveLength(1);
    // The held headers reply and the body, written together.
    expectOneRoundTrip(streams[0]);
    const [upstreamRequest, ...more] = received(testId);
    expect(more).toHaveLength(0);
    expect(upstreamRequest?.body).toBe(CHAT);
    // Envoy streams the body on without content-length in this mode.
    expect(upstreamRequest?.headers['content-length']).toBeUndefined();
    expect(upstreamRequest?.headers['transfer-encoding']).toBe('chunked');
    expect(upstreamRequest?.headers).toMatchObject({ 'x-genops-route': 'claude-sonnet', 'x-routed-by': 'claude-sonnet', 'x-genops-decision-id': expect.stringMatching(UUID), 'x-genops-team': 'ml-platform' });
    expect(response?.header('x-genops-decision-id')).toBe(upstreamRequest?.headers['x-genops-decision-id']);
  });

  it('rewrites the body it sends back (stream_options.include_usage turned on for a streamed chat request)', async () => {
    const testId = randomUUID();
    const body = JSON.stringify({ model: 'claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'Hello' }] });
    const response = await post(testId, '/v1/chat/completions', context(), body);
    expect(response.status, response.body).toBe(200);
    const sent = JSON.parse(received(testId)[0]!.body) as Record<string, unknown>;
    expect(sent).toEqual({ ...(JSON.parse(body) as Record<string, unknown>), stream_options: { include_usage: true } });
  });

  it('reads a body that arrives in many chunks (256 KiB) whole, and forwards it byte for byte', async () => {
    const testId = randomUUID();
    const body = JSON.stringify({ model: 'claude-sonnet-4-5', messages: Array.from({ length: 512 }, (_, index) => ({ role: index % 2 ? 'assistant' : 'user', content: `${index} ${'x'.repeat(500)}` })) });
    const response = await post(testId, '/v1/chat/completions', context(), body);
    expect(response.status, response.body).toBe(200);
    expect(received(testId)[0]?.body).toBe(body);
  });

  it('routes by tier after the decision (x-routed-by), ignoring a forged x-genops-route and decision id', async () => {
    const premium = randomUUID();
    expect((await post(premium, '/v1/messages', context({ 'x-genops-customer-tier': 'premium' }), OPUS)).status).toBe(200);
    expect(received(premium)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-routed-by': 'claude-opus' });

    const forged = randomUUID();
    const headers = context({ 'x-genops-customer-tier': 'standard', 'x-genops-route': 'claude-opus', 'x-routed-by': 'client' });
    expect((await post(forged, '/v1/messages', headers, CHAT)).status).toBe(200);
    expect(received(forged)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-haiku', 'x-routed-by': 'claude-haiku' });

    // A client's own decision id skips the one-round-trip route: the request is decided in two, the same way.
    const decided = randomUUID();
    const streams = await decidingStreams(async () => {
      const response = await post(decided, '/v1/messages', context({ 'x-genops-customer-tier': 'basic', 'x-genops-decision-id': 'chosen-by-client' }), OPUS);
      expect(response.status, response.body).toBe(403);
      expect(response.json<{ reason_code: string }>().reason_code).toBe('POLICY_DENY_MODEL');
    });
    expect(streams.at(-1)!.map((step) => step.kind ?? step.step)).toEqual(['request_headers', 'reply']);
    expect(received(decided)).toHaveLength(0);
    for (const request of upstream.requests) expect(request.headers['x-routed-by']).not.toBe('undecided');
  });

  it('refuses a body model the customer may not use, and a request without its team (identity from headers alone), with nothing upstream', async () => {
    const model = randomUUID();
    const denied = await post(model, '/v1/messages', context({ 'x-genops-customer-tier': 'basic' }), OPUS);
    expect(denied.status, denied.body).toBe(403);
    expect(denied.json<{ reason_code: string }>().reason_code).toBe('POLICY_DENY_MODEL');

    const team = randomUUID();
    const streams = await decidingStreams(async () => {
      const anonymous = await post(team, '/v1/chat/completions', context({ 'x-genops-team': undefined }), CHAT);
      expect(anonymous.status, anonymous.body).toBe(403);
      expect(anonymous.json<{ reason_code: string }>().reason_code).toBe('x_missing_context');
    });
    expect(streams.at(-1)![0]?.kind).toBe('request_headers');
    expect(streams.at(-1)!.at(-2)).toMatchObject({ kind: 'request_body', end: true });
    expect([...received(model), ...received(team)]).toHaveLength(0);
  });

  it('refuses an AI request without a body (GET, empty POST) on its headers, as before', async () => {
    const testId = randomUUID();
    const empty = await httpRequest(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { ...context(), 'content-type': 'application/json', 'content-length': '0', [TEST_ID]: testId } });
    expect(empty.status, empty.body).toBe(400);
    expect(empty.json<{ message: string }>().message).toMatch(/body is empty/);
    const get = await httpRequest(`${envoy.url}/v1/messages`, { method: 'GET', headers: { ...context({ 'x-genops-team': 'marketing' }), [TEST_ID]: testId } });
    expect(get.status, get.body).toBe(403);
    expect(received(testId)).toHaveLength(0);
  });

  it('governs a body without content-length: HTTP/2, chunked HTTP/1.1, and Expect: 100-continue', async () => {
    const h2 = randomUUID();
    let allowed: HttpResponse | undefined;
    const streams = await decidingStreams(async () => {
      allowed = await http2Request(`${envoy.url}/v1/messages`, { method: 'POST', headers: { ...context({ 'x-genops-customer-tier': 'premium' }), 'content-type': 'application/json', [TEST_ID]: h2 }, body: OPUS });
    });
    expect(allowed?.status, allowed?.body).toBe(200);
    expect(streams.at(-1)!.at(-1)).toMatchObject({ step: 'reply', count: 2 });
    expect(received(h2)[0]).toMatchObject({ body: OPUS, headers: { 'x-routed-by': 'claude-opus' } });
    const refused = await http2Request(`${envoy.url}/v1/messages`, { method: 'POST', headers: { ...context({ 'x-genops-customer-tier': 'basic' }), 'content-type': 'application/json', [TEST_ID]: h2 }, body: OPUS });
    expect(refused.status, refused.body).toBe(403);

    const chunked = randomUUID();
    const port = Number(new URL(envoy.url).port);
    const basic = { ...context({ 'x-genops-customer-tier': 'basic' }), 'content-type': 'application/json', [TEST_ID]: chunked };
    expect((await rawRequest(port, 'POST', '/v1/messages', basic, OPUS, { chunked: true })).status).toBe(403);
    const fine = await rawRequest(port, 'POST', '/v1/messages', { ...basic, 'x-genops-customer-id': `cust-${chunked.slice(0, 8)}` }, CHAT, { chunked: true });
    expect(fine.status, fine.body).toBe(200);
    expect(received(chunked).map((request) => request.body)).toEqual([CHAT]);

    const expect100 = randomUUID();
    const withExpect = { ...context({ 'x-genops-customer-tier': 'basic' }), 'content-type': 'application/json', expect: '100-continue', [TEST_ID]: expect100 };
    expect((await rawRequest(port, 'POST', '/v1/messages', withExpect, OPUS)).status).toBe(403);
    expect(received(h2)).toHaveLength(1);
    expect(received(expect100)).toHaveLength(0);
  });

  it('ends an HTTP/2 body at its trailers: decided on the whole body (headers, body and trailers replies at once) and forwarded', async () => {
    const send = (testId: string, headers: Record<string, string>, body: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const session = connect(envoy.url);
        session.on('error', reject);
        const stream = session.request({ [http2.HTTP2_HEADER_METHOD]: 'POST', [http2.HTTP2_HEADER_PATH]: '/v1/messages', 'content-type': 'application/json', [TEST_ID]: testId, ...headers }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-client-trailer': 'yes' }));
        let status = 0;
        const chunks: Buffer[] = [];
        stream.on('response', (received) => (status = Number(received[http2.HTTP2_HEADER_STATUS])));
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          session.close();
          resolve({ status, body: Buffer.concat(chunks).toString('utf8') });
        });
        stream.on('error', reject);
        stream.end(body);
      });
    const testId = randomUUID();
    let allowed = { status: 0, body: '' };
    const streams = await decidingStreams(async () => {
      allowed = await send(testId, context({ 'x-genops-customer-tier': 'premium' }), OPUS);
    });
    expect(allowed.status, allowed.body).toBe(200);
    // Headers, body, trailers in; then the held headers reply, the body and the trailers reply at once.
    expect(streams.at(-1)!.map((step) => step.kind ?? step.count)).toEqual(['request_headers', ...streams.at(-1)!.slice(1, -2).map(() => 'request_body'), 'request_trailers', 3]);
    expect(received(testId)[0]).toMatchObject({ body: OPUS, headers: { 'x-routed-by': 'claude-opus' } });
    const refused = await send(testId, context({ 'x-genops-customer-tier': 'basic' }), OPUS);
    expect(refused.status, refused.body).toBe(403);
    expect(received(testId)).toHaveLength(1);
  });

  it('refuses a body over the policy limit with its JSON 413 before the body ends', async () => {
    const testId = randomUUID();
    const huge = JSON.stringify({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'x'.repeat(4 * 1024 * 1024 + 16) }] });
    const response = await post(testId, '/v1/chat/completions', context(), huge);
    expect(response.status).toBe(413);
    expect(response.json<{ reason_code: string }>().reason_code).toBeTruthy();
    expect(received(testId)).toHaveLength(0);
  });

  it('keeps two round trips for a body that is not JSON (a file upload): never streamed through the service', async () => {
    const testId = randomUUID();
    const streams = await decidingStreams(async () => {
      const response = await httpRequest(`${envoy.url}/v1/files`, { method: 'POST', headers: { ...context(), 'content-type': 'multipart/form-data; boundary=x', [TEST_ID]: testId }, body: '--x\r\n\r\nfile\r\n--x--\r\n' });
      // Deny by default: the default policy governs no /v1/files body; what matters is the round trips.
      expect(response.status, response.body).toBe(403);
    });
    expect(streams.at(-1)!.map((step) => step.kind ?? step.step)).toEqual(['request_headers', 'reply']);
    expect(received(testId)).toHaveLength(0);
  });

  it('keeps two round trips and content-length for a request signed with AWS SigV4 (x-amz-date)', async () => {
    const testId = randomUUID();
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] });
    const path = '/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke';
    let response: HttpResponse | undefined;
    const streams = await decidingStreams(async () => {
      response = await post(testId, path, { ...context(), 'x-amz-date': '20261205T010000Z' }, body);
    });
    expect(response?.status, response?.body).toBe(200);
    expect(streams.at(-1)!.map((step) => step.kind ?? step.step)).toEqual(['request_headers', 'reply']);
    expect(received(testId)[0]).toMatchObject({ body, headers: { 'content-length': String(Buffer.byteLength(body)) } });
  });

  it('lets a decided request wait on its upstream past the undecided route idle timeout (2 s)', async () => {
    const testId = randomUUID();
    const response = await post(testId, '/v1/chat/completions', { ...context(), 'x-slow-ms': '2600' }, CHAT);
    expect(response.status, response.body).toBe(200);
    expect(response.json<{ slow: boolean }>().slow).toBe(true);
  });

  it('fails closed with 504 within the route idle timeout while the service hangs (no message_timeout in this mode), and recovers', async () => {
    const testId = randomUUID();
    const { pid } = service.process;
    process.kill(pid, 'SIGSTOP');
    let response: HttpResponse;
    const startedAt = Date.now();
    try {
      response = await post(testId, '/v1/chat/completions', context(), CHAT);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Envoy's stream idle timeout on a request it has read whole: 504 "stream timeout".
    expect(response.status).toBe(504);
    expect(response.body).toBe('stream timeout');
    expect(Date.now() - startedAt).toBeLessThan(4_000);
    expect(received(testId)).toHaveLength(0);

    const after = await post(testId, '/v1/chat/completions', context(), CHAT);
    expect(after.status, after.body).toBe(200);
    expect(received(testId)).toHaveLength(1);
  });
});
