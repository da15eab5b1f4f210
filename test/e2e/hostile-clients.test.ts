/**
 * The hostile client: every way found around "a team may call only the models its policy allows",
 * tried through the real Envoy booting the shipped ext_proc and ext_authz configs, and through the
 * real nginx with the shipped forward-auth snippet. Each request here was ALLOWED (or ended in a
 * gRPC INTERNAL) before deny by default; now each is refused with its reason named, and the stub
 * upstream records that none of them arrived.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as connectHttp2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGovernanceStack, startStubLlm, type GovernanceStack, type StubLlm } from '../support/index.js';
import { context } from '../support/request-context.js';
import { writeDefaultPolicy } from '../support/default-policy.js';
import { rawRequest, refusal, startForwardAuthStack, type Answer, type ForwardAuthStack } from './hostile-support.js';

const TEST_ID = 'x-test-id';
/** product-team may use claude-haiku and claude-sonnet only (deploy/default-policy.yaml). */
const PRODUCT_TEAM = { 'x-genops-team': 'product-team' };
const FORBIDDEN_MODEL = 'claude-opus-4-1';
const json = { 'content-type': 'application/json' };
const chat = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'What is the capital of France?' }], max_completion_tokens: 64, ...extra });
const nested = (depth: number) => `${'['.repeat(depth)}"deep"${']'.repeat(depth)}`;

/** The same over HTTP/2 (h2c, prior knowledge), the :path as given; the body has no content-length. */
function sendHttp2(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    stream.on('response', (incoming) => {
      status = Number(incoming[':status']);
      responseHeaders = incoming as IncomingHttpHeaders;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      session.close();
      resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

function writePolicy(dir: string): string {
  return writeDefaultPolicy(dir, 'policy.yaml', (spec) => {
    spec.usage = { headersOnly: [{ prefix: '/v1/files', description: 'uploads: team and limits only' }] };
  });
}


describe.each(['ext-proc', 'ext-authz'] as const)('hostile clients through the real Envoy (%s)', (mode) => {
  let dir: string | undefined;
  let llm: StubLlm | undefined;
  let stack: GovernanceStack | undefined;
  let port = 0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-hostile-'));
    llm = await startStubLlm({ chunkDelayMs: 1 });
    stack = await startGovernanceStack({ mode, upstreamPort: llm.port, policyPath: writePolicy(dir) });
    port = Number(new URL(stack.url).port);
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const tagged = (extra: Record<string, string> = {}) => {
    const testId = randomUUID();
    return { testId, headers: { ...context(PRODUCT_TEAM), ...json, [TEST_ID]: testId, ...extra } };
  };
  const reached = (testId: string) => llm!.received(testId);

  it.each([
    ['/v1/completions', JSON.stringify({ model: FORBIDDEN_MODEL, prompt: 'Say hi', max_tokens: 16 }), 'POLICY_DENY_MODEL'],
    ['/openai/deployments/claude-opus/chat/completions?api-version=2024-10-21', chat('claude-haiku-4-5'), 'POLICY_DENY_MODEL'],
    ['/v1/messages/batches', JSON.stringify({ requests: [{ custom_id: 'a', params: { model: FORBIDDEN_MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] } }] }), 'POLICY_DENY_MODEL'],
    ['/v1beta/models/gemini-2.5-pro:generateContent', JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }), 'POLICY_DENY_MODEL'],
    ['/V1BETA/models/gemini-2.5-pro:GenerateContent', JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }), 'x_unknown_ai_api'],
    ['/v1beta/models/gemini-2.5-pro%3AgenerateContent', JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }), 'x_unknown_ai_api'],
    ['/v1/some-new-ai-api', JSON.stringify({ model: FORBIDDEN_MODEL, input: 'hi' }), 'x_unknown_ai_api'],
  ])('POST %s with a forbidden model inside: %s, never forwarded', async (path, body, reason) => {
    const { testId, headers } = tagged();
    const answer = await rawRequest(port, 'POST', path, headers, body);
    const denial = refusal(answer, 403, reason);
    if (reason === 'x_unknown_ai_api') expect(denial.message).toContain(path.split('?')[0]);
    expect(reached(testId)).toHaveLength(0);
  });

  it('PUT, PATCH and even GET with a body the service cannot read: refused with the method and path named', async () => {
    for (const method of ['PUT', 'PATCH', 'GET']) {
      const { testId, headers } = tagged();
      expect(refusal(await rawRequest(port, method, '/v1/chat/completions', headers, chat(FORBIDDEN_MODEL)), 403, 'x_unknown_ai_api').message).toContain(`${method} "/v1/chat/completions"`);
      expect(reached(testId)).toHaveLength(0);
    }
  });

  it('a body-less GET and a headers-only POST still pass: the deny is for unreadable bodies only', async () => {
    const get = tagged();
    expect((await rawRequest(port, 'GET', '/v1/models', get.headers)).status).toBeLessThan(500);
    expect(reached(get.testId)).toHaveLength(1);
    const upload = tagged({ 'content-type': 'text/plain' });
    expect((await rawRequest(port, 'POST', '/v1/files', upload.headers, 'not json at all')).status).toBeLessThan(500);
    expect(reached(upload.testId).map((request) => request.body)).toEqual(['not json at all']);
  });

  it('the model twice in one body (JSON.parse keeps the last, an upstream may keep the first): 400 naming the key', async () => {
    const { testId, headers } = tagged();
    const body = `{"model":"${FORBIDDEN_MODEL}","max_tokens":64,"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`;
    expect(refusal(await rawRequest(port, 'POST', '/v1/messages', headers, body), 400, 'x_malformed_body').message).toMatch(/"model" twice at the top level/);
    // Spelled with an escape, the same key.
    const escaped = tagged();
    expect(refusal(await rawRequest(port, 'POST', '/v1/messages', escaped.headers, body.replace('"model":"claude-haiku', '"mod\\u0065l":"claude-haiku')), 400, 'x_malformed_body').message).toMatch(/"model" twice/);
    // A duplicate include_usage would let a stream go unmetered upstream.
    const usage = tagged();
    expect(refusal(await rawRequest(port, 'POST', '/v1/chat/completions', usage.headers, chat('claude-haiku-4-5', { stream: true }).replace('"stream":true', '"stream":true,"stream_options":{"include_usage":false,"include_usage":true}')), 400, 'x_malformed_body').message).toMatch(/"include_usage" twice in "stream_options"/);
    expect([...reached(testId), ...reached(escaped.testId), ...reached(usage.testId)]).toHaveLength(0);
  });

  it('a streamed chat body nested 5,000 deep: 400 naming the bound (was a gRPC INTERNAL)', async () => {
    const { testId, headers } = tagged();
    const body = `{"model":"claude-haiku-4-5","stream":true,"messages":[{"role":"user","content":${nested(5_000)}}]}`;
    expect(refusal(await rawRequest(port, 'POST', '/v1/chat/completions', headers, body), 400, 'x_malformed_body').message).toMatch(/deeper than 128 levels/);
    expect(reached(testId)).toHaveLength(0);
    // The service is still deciding.
    const after = tagged();
    expect((await rawRequest(port, 'POST', '/v1/chat/completions', after.headers, chat('claude-haiku-4-5'))).status).toBe(200);
  });

  // Against main (0f1d260) the escaped-slash, case, `;` and `%3F` spellings were ALLOWED with opus; the
  // `//`, `..`, `%2e%2e`, `%63` and `?` ones were already refused because the shipped Envoy configs set
  // normalize_path and merge_slashes: they stay here as guards of those settings and of the service's own readings.
  it.each([
    ['/v1//chat/completions', 'POLICY_DENY_MODEL'],
    ['/v1/chat%2Fcompletions', 'POLICY_DENY_MODEL'],
    ['/v1/chat%2fcompletions', 'POLICY_DENY_MODEL'],
    ['/V1/Chat/Completions', 'POLICY_DENY_MODEL'],
    ['/v1/chat/completions;', 'POLICY_DENY_MODEL'],
    ['/v1/chat/completions;a=b', 'POLICY_DENY_MODEL'],
    ['/v1/chat/completions?', 'POLICY_DENY_MODEL'],
    ['/v1/chat/completions?/v1/files', 'POLICY_DENY_MODEL'],
    ['/v1/chat/completions%3F', 'x_unknown_ai_api'],
    ['/v1/files/../chat/completions', 'POLICY_DENY_MODEL'],
    ['/v1/files/%2e%2e/chat/completions', 'POLICY_DENY_MODEL'],
    ['/v1/files/..%2Fchat%2Fcompletions', 'POLICY_DENY_MODEL'],
    ['/v1/files%2F..%2Fchat%2Fcompletions', 'POLICY_DENY_MODEL'],
    ['/v1/chat/%63ompletions', 'POLICY_DENY_MODEL'],
  ])('POST %s with a forbidden model: %s, never forwarded', async (path, reason) => {
    const { testId, headers } = tagged();
    refusal(await rawRequest(port, 'POST', path, headers, chat(FORBIDDEN_MODEL)), 403, reason);
    expect(reached(testId)).toHaveLength(0);
  });

  it('a chunked body without content-length is read (or refused) like any other', async () => {
    const unknown = tagged();
    refusal(await rawRequest(port, 'POST', '/v1/some-new-ai-api', unknown.headers, JSON.stringify({ model: FORBIDDEN_MODEL, prompt: 'hi' }), { chunked: true }), 403, 'x_unknown_ai_api');
    const forbidden = tagged();
    refusal(await rawRequest(port, 'POST', '/v1/chat/completions', forbidden.headers, chat(FORBIDDEN_MODEL), { chunked: true }), 403, 'POLICY_DENY_MODEL');
    const duplicate = tagged();
    refusal(await rawRequest(port, 'POST', '/v1/chat/completions', duplicate.headers, chat('claude-haiku-4-5').replace('{"model"', `{"model":"${FORBIDDEN_MODEL}","model"`), { chunked: true }), 400, 'x_malformed_body');
    expect([...reached(unknown.testId), ...reached(forbidden.testId), ...reached(duplicate.testId)]).toHaveLength(0);
    const allowed = tagged();
    expect((await rawRequest(port, 'POST', '/v1/chat/completions', allowed.headers, chat('claude-haiku-4-5'), { chunked: true })).status).toBe(200);
    expect(reached(allowed.testId)).toHaveLength(1);
  });

  it('over HTTP/2 (no content-length): unknown bodies, duplicate keys, spellings and forbidden models are refused the same', async () => {
    const cases: [string, string, number, string][] = [
      ['/v1/completions', JSON.stringify({ model: FORBIDDEN_MODEL, prompt: 'hi' }), 403, 'POLICY_DENY_MODEL'],
      ['/v1/some-new-ai-api', JSON.stringify({ model: FORBIDDEN_MODEL }), 403, 'x_unknown_ai_api'],
      ['/v1/chat%2Fcompletions', chat(FORBIDDEN_MODEL), 403, 'POLICY_DENY_MODEL'],
      ['/V1/chat/completions', chat(FORBIDDEN_MODEL), 403, 'POLICY_DENY_MODEL'],
      ['/v1/messages', `{"model":"${FORBIDDEN_MODEL}","model":"claude-haiku-4-5","max_tokens":5,"messages":[]}`, 400, 'x_malformed_body'],
      ['/v1/chat/completions', `{"model":"claude-haiku-4-5","stream":true,"messages":${nested(5_000)}}`, 400, 'x_malformed_body'],
    ];
    for (const [path, body, status, reason] of cases) {
      const { testId, headers } = tagged();
      const { 'content-type': contentType, ...rest } = headers;
      refusal(await sendHttp2(port, 'POST', path, { ...rest, 'content-type': contentType! }, body), status, reason);
      expect(reached(testId), path).toHaveLength(0);
    }
  });
});

describe('hostile clients through the real nginx (forward auth: headers only, no body)', () => {
  let nginx: ForwardAuthStack | undefined;
  let port = 0;
  beforeAll(async () => {
    nginx = await startForwardAuthStack({ prefix: 'genops-hostile-nginx-', writePolicy });
    port = nginx.port;
  });
  afterAll(() => nginx?.stop());
  const tagged = (overrides: Record<string, string | undefined> = PRODUCT_TEAM, extra: Record<string, string> = {}) => {
    const testId = randomUUID();
    return { testId, headers: { ...context(overrides), ...json, [TEST_ID]: testId, ...extra } };
  };
  const reached = (testId: string) => nginx!.llm.received(testId);

  it('an AI API call where a model rule applies: 403 x_body_required naming the Envoy configs', async () => {
    const { testId, headers } = tagged();
    const denial = refusal(await rawRequest(port, 'POST', '/v1/chat/completions', headers, chat(FORBIDDEN_MODEL)), 403, 'x_body_required');
    expect(denial.message).toContain('deploy/envoy/ext-proc.yaml');
    expect(denial.message).toContain('deploy/envoy/ext-authz.yaml');
    expect(denial.message).toMatch(/team product-team may use only some models/);
    expect(reached(testId)).toHaveLength(0);
  });

  it('a forged X-Forwarded-Uri or X-Forwarded-Method does not move the checked path or method (nginx sets X-Original-URI)', async () => {
    const forgedPath = tagged(PRODUCT_TEAM, { 'x-forwarded-uri': '/v1/files' });
    refusal(await rawRequest(port, 'POST', '/v1/chat/completions', forgedPath.headers, chat(FORBIDDEN_MODEL)), 403, 'x_body_required');
    const forgedOriginal = tagged(PRODUCT_TEAM, { 'x-original-uri': '/v1/files', 'x-original-method': 'GET', 'x-forwarded-method': 'GET' });
    refusal(await rawRequest(port, 'POST', '/v1/chat/completions', forgedOriginal.headers, chat(FORBIDDEN_MODEL)), 403, 'x_body_required');
    expect([...reached(forgedPath.testId), ...reached(forgedOriginal.testId)]).toHaveLength(0);
  });

  it.each(['/v1//chat/completions', '/v1/chat%2Fcompletions', '/V1/chat/completions', '/v1/chat/completions;x', '/v1/files/../chat/completions'])('the spelling %s is still an AI API call: x_body_required', async (path) => {
    const { testId, headers } = tagged();
    refusal(await rawRequest(port, 'POST', path, headers, chat(FORBIDDEN_MODEL)), 403, 'x_body_required');
    expect(reached(testId)).toHaveLength(0);
  });

  it('legacy Completions needs the body (x_body_required); an unknown AI API with a body is x_unknown_ai_api, chunked or not', async () => {
    const plain = tagged();
    // Legacy Completions is read behind Envoy; forward auth cannot read it.
    refusal(await rawRequest(port, 'POST', '/v1/completions', plain.headers, JSON.stringify({ model: FORBIDDEN_MODEL, prompt: 'hi' })), 403, 'x_body_required');
    const chunked = tagged();
    refusal(await rawRequest(port, 'POST', '/v1/some-new-ai-api', chunked.headers, JSON.stringify({ model: FORBIDDEN_MODEL }), { chunked: true }), 403, 'x_unknown_ai_api');
    expect([...reached(plain.testId), ...reached(chunked.testId)]).toHaveLength(0);
  });

  it('a model the path names is checked without the body: a forbidden Gemini model is POLICY_DENY_MODEL, however the path is spelled', async () => {
    for (const path of ['/v1beta/models/gemini-2.5-pro:generateContent', '/v1beta//models/gemini-2.5-pro:streamGenerateContent?alt=sse', '/v1beta/models/gemini-2.5-pro%3AgenerateContent']) {
      const { testId, headers } = tagged();
      refusal(await rawRequest(port, 'POST', path, headers, JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })), 403, path.includes('%3A') ? 'x_unknown_ai_api' : 'POLICY_DENY_MODEL');
      expect(reached(testId), path).toHaveLength(0);
    }
  });

  it('where no model rule or budget applies, forward auth still decides on headers (ml-platform may use every model)', async () => {
    const { testId, headers } = tagged({ 'x-genops-team': 'ml-platform' });
    expect((await rawRequest(port, 'POST', '/v1/chat/completions', headers, chat(FORBIDDEN_MODEL))).status).toBe(200);
    expect(reached(testId)).toHaveLength(1);
    const upload = tagged(PRODUCT_TEAM, { 'content-type': 'text/plain' });
    expect((await rawRequest(port, 'POST', '/v1/files', upload.headers, 'not json')).status).toBe(200);
  });
});
