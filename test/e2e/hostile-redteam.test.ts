/**
 * The red team: combinations the other hostile suites do not try, through the real Envoy booting the
 * shipped ext_proc and ext_authz configs. Each case is a request an attacker would send to reach a
 * model its team may not use, or to make the service read a body differently from the upstream.
 * The stub upstream's recorded requests say what got through.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as plainRequest } from 'node:http';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { REPO_ROOT, startGovernanceStack, startStubLlm, startUpstream, STUB_BEHAVIOR_HEADER, type GovernanceStack, type StubLlm, type Upstream } from '../support/index.js';
import { context } from '../support/request-context.js';
import { eventually } from '../telemetry/telemetry-support.js';
import { rawRequest, type Answer } from './hostile-support.js';

const TEST_ID = 'x-test-id';
/** product-team may use claude-haiku and claude-sonnet only (deploy/default-policy.yaml). */
const PRODUCT_TEAM = { 'x-genops-team': 'product-team' };
const ALLOWED = 'claude-haiku-4-5';
const FORBIDDEN = 'claude-opus-4-1';
const json = { 'content-type': 'application/json' };
const messages = [{ role: 'user', content: 'What is the capital of France?' }];

const send = (port: number, method: string, path: string, headers: Record<string, string | string[]>, body?: string | Buffer): Promise<Answer> => rawRequest(port, method, path, headers, body);

/** Raw bytes on one connection (smuggling, pipelining): everything Envoy writes back until it closes or goes quiet. */
function sendRaw(port: number, bytes: string, quietMs = 1_500): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    };
    socket.on('connect', () => {
      socket.write(bytes);
      arm();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      arm();
    });
    socket.on('end', done);
    socket.on('error', (error) => (chunks.length > 0 ? done() : reject(error)));
  });
}

function refusal(answer: Answer, status: number | readonly number[], reasons: string | readonly string[]): { reason_code: string; message: string } {
  expect(typeof status === 'number' ? [status] : status, answer.body).toContain(answer.status);
  const body = JSON.parse(answer.body) as { reason_code: string; message: string; decision_id: string };
  expect(typeof reasons === 'string' ? [reasons] : reasons, answer.body).toContain(body.reason_code);
  expect(body.message.length).toBeGreaterThan(0);
  return body;
}

function writePolicy(dir: string): string {
  const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  // An operator's Azure deployment whose name says nothing about the model it serves.
  policy.spec.usage = { azureDeployments: { 'prod-east': FORBIDDEN, 'fast-lane': ALLOWED } };
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, stringify(policy));
  return path;
}

describe.each(['ext-proc', 'ext-authz'] as const)('the red team through the real Envoy (%s)', (mode) => {
  let dir: string | undefined;
  let llm: StubLlm | undefined;
  let stack: GovernanceStack | undefined;
  let port = 0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-redteam-'));
    llm = await startStubLlm({ chunkDelayMs: 1 });
    stack = await startGovernanceStack({ mode, upstreamPort: llm.port, policyPath: writePolicy(dir) });
    port = Number(new URL(stack.url).port);
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const tagged = (extra: Record<string, string | string[]> = {}) => {
    const testId = randomUUID();
    return { testId, headers: { ...context(PRODUCT_TEAM), ...json, [TEST_ID]: testId, ...extra } };
  };
  const reached = (testId: string) => llm!.received(testId);

  // Go's encoding/json (Ollama, Envoy AI Gateway, many self-hosted OpenAI-compatible servers) matches
  // keys case-insensitively, folding Unicode too (U+212A KELVIN SIGN is "k", U+017F LONG S is "s"),
  // and the last match wins: `{"model":"haiku","Model":"opus"}` is opus there, haiku to JSON.parse.
  it.each([
    ['"Model"', `{"model":"${ALLOWED}","Model":"${FORBIDDEN}","max_completion_tokens":64,"messages":[{"role":"user","content":"hi"}]}`],
    ['"MODEL"', `{"model":"${ALLOWED}","MODEL":"${FORBIDDEN}","max_completion_tokens":64,"messages":[{"role":"user","content":"hi"}]}`],
    ['"max_to\u212Aens" (Kelvin sign)', `{"model":"${ALLOWED}","max_tokens":16,"max_to\u212Aens":100000,"messages":[{"role":"user","content":"hi"}]}`],
    ['"\u017Ftream_options" (long s) in an escape', `{"model":"${ALLOWED}","stream":true,"stream_options":{"include_usage":true},"\\u017Ftream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}`],
    ['"Include_Usage" inside stream_options', `{"model":"${ALLOWED}","stream":true,"stream_options":{"include_usage":true,"Include_Usage":false},"messages":[{"role":"user","content":"hi"}]}`],
    // Alone: JSON.parse reads no cap (the service would set one), a case-ignoring reader reads 100000.
    ['"MAX_TOKENS" alone', `{"model":"${ALLOWED}","MAX_TOKENS":100000,"messages":[{"role":"user","content":"hi"}]}`],
  ])('a key in another case, %s: 400 x_malformed_body, never forwarded', async (_name, body) => {
    const { testId, headers } = tagged();
    expect(refusal(await send(port, 'POST', '/v1/chat/completions', headers, body), 400, 'x_malformed_body').message).toMatch(/twice|the field is spelled/);
    expect(reached(testId)).toHaveLength(0);
  });

  it.each([
    ['a second JSON value after the first', `${JSON.stringify({ model: ALLOWED, messages })}${JSON.stringify({ model: FORBIDDEN, messages })}`],
    ['trailing garbage', `${JSON.stringify({ model: ALLOWED, messages })} garbage`],
    ['NaN in a number field (Python json reads it)', `{"model":"${ALLOWED}","max_tokens":NaN,"messages":[]}`],
    ['the model as an array', JSON.stringify({ model: [FORBIDDEN, ALLOWED], messages })],
    ['the model as an object', JSON.stringify({ model: { id: FORBIDDEN }, messages })],
    ['the body as an array of requests', JSON.stringify([{ model: ALLOWED, messages }, { model: FORBIDDEN, messages }])],
    ['stream as the string "true"', JSON.stringify({ model: ALLOWED, stream: 'true', messages })],
    ['max_tokens 1e400 (Infinity)', `{"model":"${ALLOWED}","max_tokens":1e400,"messages":[]}`],
    ['a negative max_tokens', JSON.stringify({ model: ALLOWED, max_tokens: -1, messages })],
    ['a fractional max_tokens', JSON.stringify({ model: ALLOWED, max_tokens: 10.5, messages })],
    ['n: 0', JSON.stringify({ model: ALLOWED, n: 0, messages })],
    ['a NUL inside the model', JSON.stringify({ model: `${ALLOWED}\u0000${FORBIDDEN}`, messages })],
    ['a model with a path in it', JSON.stringify({ model: `${ALLOWED}/../${FORBIDDEN}`, messages })],
  ])('%s: 400, never forwarded', async (_name, body) => {
    const { testId, headers } = tagged();
    refusal(await send(port, 'POST', '/v1/chat/completions', headers, body), [400, 403], ['x_malformed_body', 'POLICY_DENY_MODEL']);
    expect(reached(testId)).toHaveLength(0);
  });

  it.each([
    ['mixed case', 'Claude-Opus-4-1'],
    ['a trailing space', `${FORBIDDEN} `],
    ['a Vertex version', `${FORBIDDEN}@20250805`],
    ['a Bedrock id', `us.anthropic.${FORBIDDEN}-20250805-v1:0`],
    ['an allowed family with a forbidden suffix', 'claude-haiku-opus-4-1'],
    ['an allowed family prefix glued on', `claude-haiku.${FORBIDDEN}`],
  ])('the forbidden model spelled with %s in the body: POLICY_DENY_MODEL', async (_name, model) => {
    const { testId, headers } = tagged();
    refusal(await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model, messages, max_completion_tokens: 16 })), 403, 'POLICY_DENY_MODEL');
    expect(reached(testId)).toHaveLength(0);
  });

  it.each([
    ['a Bedrock foundation-model ARN', `/model/${encodeURIComponent(`arn:aws:bedrock:us-east-1:123456789012:foundation-model/anthropic.${FORBIDDEN}-20250805-v1:0`)}/converse`],
    ['a Bedrock inference-profile ARN', `/model/${encodeURIComponent(`arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.${FORBIDDEN}-20250805-v1:0`)}/converse`],
    ['a Bedrock ARN behind an allowed-looking profile name', `/model/${encodeURIComponent(`arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5/../anthropic.${FORBIDDEN}-v1:0`)}/converse`],
    ['a Bedrock id percent-encoded twice', `/model/${encodeURIComponent(encodeURIComponent(`anthropic.${FORBIDDEN}-v1:0`))}/converse`],
    ['a Bedrock id with its colon unencoded', `/model/anthropic.${FORBIDDEN}-v1:0/converse`],
    ['a Vertex Claude path with an allowed model in the body', `/v1/projects/p/locations/us-east5/publishers/anthropic/models/${FORBIDDEN}@20250805:rawPredict`],
    ['an Azure deployment the policy maps to a forbidden model, in another case', '/openai/deployments/PROD-EAST/chat/completions?api-version=2024-10-21'],
    ['an Azure deployment named by the forbidden model', `/openai/deployments/${FORBIDDEN}/chat/completions?api-version=2024-10-21&api-version=2025-01-01`],
  ])('%s: refused even with an allowed model in the body', async (name, path) => {
    const { testId, headers } = tagged();
    const body = JSON.stringify({ model: ALLOWED, anthropic_version: 'vertex-2023-10-16', max_tokens: 16, messages: [{ role: 'user', content: [{ text: 'hi' }] }] });
    // Decoded once, a twice-encoded id keeps a '%', which no model name has: malformed.
    if (name.includes('twice')) refusal(await send(port, 'POST', path, headers, body), 400, 'x_malformed_body');
    else refusal(await send(port, 'POST', path, headers, body), 403, 'POLICY_DENY_MODEL');
    expect(reached(testId)).toHaveLength(0);
  });

  it.each([
    ['Vertex Claude', `/v1/projects/p/locations/us-east5/publishers/anthropic/models/${ALLOWED}@20251001:rawPredict`, { anthropic_version: 'vertex-2023-10-16', model: FORBIDDEN, max_tokens: 16, messages }],
    ['Bedrock Converse', `/model/us.anthropic.${ALLOWED}-20251001-v1:0/converse`, { model: FORBIDDEN, inferenceConfig: { maxTokens: 16 }, messages: [{ role: 'user', content: [{ text: 'hi' }] }] }],
    ['Bedrock InvokeModel', `/model/anthropic.${ALLOWED}-20251001-v1:0/invoke`, { anthropic_version: 'bedrock-2023-05-31', model: FORBIDDEN, max_tokens: 16, messages }],
  ])('%s: an allowed model in the path and a forbidden one in the body (an upstream may read either): both checked, never forwarded', async (_name, path, body) => {
    const { testId, headers } = tagged();
    expect(refusal(await send(port, 'POST', path, headers, JSON.stringify(body)), 403, 'POLICY_DENY_MODEL').message).toContain(FORBIDDEN);
    expect(reached(testId)).toHaveLength(0);
    // The same model in both places is fine.
    const same = tagged();
    const answer = await send(port, 'POST', path, same.headers, JSON.stringify({ ...body, model: `${ALLOWED}-20251001` }));
    expect(answer.status, answer.body).toBe(200);
  });

  it('x-genops-model names an allowed model while the body names a forbidden one: refused, never forwarded', async () => {
    const { testId, headers } = tagged({ 'x-genops-model': ALLOWED });
    refusal(await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model: FORBIDDEN, messages })), [400, 403], ['x_model_mismatch', 'POLICY_DENY_MODEL']);
    expect(reached(testId)).toHaveLength(0);
  });

  it('a gzip-compressed body (content-encoding: gzip) is not read as JSON: 400, never forwarded', async () => {
    const { testId, headers } = tagged({ 'content-encoding': 'gzip' });
    refusal(await send(port, 'POST', '/v1/chat/completions', headers, gzipSync(JSON.stringify({ model: FORBIDDEN, messages }))), 400, 'x_malformed_body');
    expect(reached(testId)).toHaveLength(0);
  });

  // A JSON body labelled as a form: a server that parses forms by content type reads
  // `model=claude-opus-4-1` out of the string value; JSON.parse reads the haiku after it.
  it.each(['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])('a JSON body labelled %s: 400, never forwarded', async (contentType) => {
    const { testId, headers } = tagged({ 'content-type': contentType });
    const body = `{"a":"&model=${FORBIDDEN}&b=","model":"${ALLOWED}","messages":[{"role":"user","content":"hi"}]}`;
    refusal(await send(port, 'POST', '/v1/chat/completions', headers, body), 400, 'x_malformed_body');
    expect(reached(testId)).toHaveLength(0);
  });

  it('Expect: 100-continue is decided on the body like any other request', async () => {
    const { testId, headers } = tagged({ expect: '100-continue' });
    refusal(await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model: FORBIDDEN, messages })), 403, 'POLICY_DENY_MODEL');
    expect(reached(testId)).toHaveLength(0);
  });

  it('a client x-genops-route and x-genops-decision-id never reach the upstream as sent', async () => {
    const { testId, headers } = tagged({ 'x-genops-route': 'claude-opus', 'x-genops-decision-id': 'forged-decision' });
    const answer = await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model: ALLOWED, messages, max_completion_tokens: 16 }));
    expect(answer.status, answer.body).toBe(200);
    const [arrived] = reached(testId);
    expect(arrived!.headers['x-genops-route']).not.toContain('claude-opus');
    expect(arrived!.headers['x-genops-decision-id']).not.toContain('forged-decision');
    expect(answer.headers['x-genops-decision-id']).not.toContain('forged-decision');
  });

  it('two x-genops-team headers (product-team, then ml-platform) never make the request ml-platform', async () => {
    const { testId, headers } = tagged({ 'x-genops-team': ['product-team', 'ml-platform'] });
    const answer = await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model: FORBIDDEN, messages, max_completion_tokens: 16 }));
    expect(answer.status, answer.body).toBeGreaterThanOrEqual(400);
    expect(answer.status, answer.body).toBeLessThan(500);
    expect(reached(testId)).toHaveLength(0);
  });

  it('`Connection: x-genops-team` cannot strip the team after the check (Envoy keeps or drops it before the filters)', async () => {
    const { testId, headers } = tagged({ connection: 'keep-alive, x-genops-team' });
    const answer = await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model: FORBIDDEN, messages, max_completion_tokens: 16 }));
    expect(answer.status, answer.body).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(reached(testId)).toHaveLength(0);
  });

  it('a WebSocket upgrade to the Realtime API (a GET: decided on headers) is not proxied by the shipped config', async () => {
    const { testId, headers } = tagged({ connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' });
    const answer = await send(port, 'GET', `/v1/realtime?model=${FORBIDDEN}`, headers);
    expect(answer.status).not.toBe(101);
    expect(reached(testId)).toHaveLength(0);
  });

  it('Transfer-Encoding and Content-Length together (request smuggling): Envoy refuses, nothing smuggled reaches the upstream', async () => {
    const testId = randomUUID();
    const smuggled = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-genops-team: product-team\r\n${TEST_ID}: ${testId}\r\ncontent-type: application/json\r\ncontent-length: ${JSON.stringify({ model: FORBIDDEN, messages }).length}\r\n\r\n${JSON.stringify({ model: FORBIDDEN, messages })}`;
    const first = JSON.stringify({ model: ALLOWED, messages });
    const contextHeaders = Object.entries(context(PRODUCT_TEAM)).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    const wire = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${contextHeaders}${TEST_ID}: ${testId}\r\ncontent-type: application/json\r\ncontent-length: ${first.length + 5}\r\ntransfer-encoding: chunked\r\n\r\n${first.length.toString(16)}\r\n${first}\r\n0\r\n\r\n${smuggled}`;
    const answer = await sendRaw(port, wire);
    // Envoy answers 400 or closes the connection without an answer; never two answers.
    expect(answer).toMatch(/^(HTTP\/1\.1 400[^]*)?$/);
    expect(answer.match(/HTTP\/1\.1 /g)?.length ?? 0).toBeLessThanOrEqual(1);
    expect(reached(testId).filter((request) => request.body.includes(FORBIDDEN))).toHaveLength(0);
  });

  it('pipelined requests on one connection are each decided on their own body', async () => {
    const testId = randomUUID();
    const contextHeaders = Object.entries(context(PRODUCT_TEAM)).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    const one = (model: string) => {
      const body = JSON.stringify({ model, messages, max_completion_tokens: 16 });
      return `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${contextHeaders}${TEST_ID}: ${testId}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    };
    const answer = await sendRaw(port, `${one(ALLOWED)}${one(FORBIDDEN)}${one(ALLOWED)}`);
    expect(answer.match(/HTTP\/1\.1 200/g)?.length ?? 0).toBeLessThanOrEqual(2);
    expect(answer).toMatch(/HTTP\/1\.1 403/);
    expect(reached(testId).filter((request) => request.body.includes(FORBIDDEN))).toHaveLength(0);
  });

  it('stream_options.include_usage: false is turned on upstream (ext_proc), or the stream is still metered', async () => {
    const { testId, headers } = tagged();
    const answer = await send(port, 'POST', '/v1/chat/completions', headers, JSON.stringify({ model: ALLOWED, messages, stream: true, stream_options: { include_usage: false }, max_completion_tokens: 16 }));
    expect(answer.status, answer.body).toBe(200);
    const [arrived] = reached(testId);
    if (mode === 'ext-proc') expect((JSON.parse(arrived!.body) as { stream_options: { include_usage: boolean } }).stream_options.include_usage).toBe(true);
  });
});

/**
 * The second promise, a budget cannot be overspent, against requests that tell the service one cap
 * and the provider another. The stub bills the most each request it received allows.
 */
describe('the red team against a budget (ext_proc)', () => {
  const AMOUNT_USD = 2;
  const ADMIN_TOKEN = 'redteam-admin-token';
  let dir: string | undefined;
  let llm: StubLlm | undefined;
  let stack: GovernanceStack | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-redteam-budget-'));
    const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
    policy.spec.rateLimits = [];
    policy.spec.pricing = {
      defaults: false,
      version: 'redteam',
      models: [
        { model: 'gpt-4o', input: '2.50', output: '10', contextWindow: 128_000 },
        { model: 'gemini-2.5-flash', input: '0.30', output: '2.50', contextWindow: 1_000_000, maxOutput: 65_536 },
      ],
    };
    policy.spec.budgets = [{ name: 'project-daily', key: ['project'], amount: AMOUNT_USD, period: 'daily', timeZone: 'UTC', maxOutputTokens: 60_000 }];
    const policyPath = join(dir, 'policy.yaml');
    writeFileSync(policyPath, stringify(policy));
    llm = await startStubLlm({ chunkDelayMs: 1 });
    stack = await startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath, serviceEnv: { GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const headersFor = (project: string) => ({ ...json, 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'c-1', 'x-genops-project': project, [STUB_BEHAVIOR_HEADER]: 'bill-max=128000' });
  const spentOf = async (project: string) =>
    eventually(async () => {
      const document = (await (await fetch(`${stack!.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
      const account = document.budgets.flatMap((budget) => budget.accounts).find((entry) => entry.key === project);
      return account && account.reserved_usd === 0 && account.spent_usd > 0 ? account.spent_usd : undefined;
    }, 'every admitted request to settle', 20_000);

  it('a chat body with a small max_completion_tokens and a huge max_tokens (an upstream may honour either) is held at the larger: never past the amount', async () => {
    const project = `caps-${randomUUID().slice(0, 6)}`;
    const body = JSON.stringify({ model: 'gpt-4o', messages, max_completion_tokens: 10, max_tokens: 100_000 });
    const answers = await Promise.all(Array.from({ length: 6 }, () => send(Number(new URL(stack!.url).port), 'POST', '/v1/chat/completions', headersFor(project), body)));
    expect(answers.map((answer) => answer.status).filter((status) => status !== 200 && status !== 429)).toEqual([]);
    expect(await spentOf(project)).toBeLessThanOrEqual(AMOUNT_USD);
  });

  // Google's JSON takes the proto field names too: generation_config.candidate_count is eight
  // candidates to Gemini, each up to the cap; read as camelCase only, it was one.
  it('a Gemini body in proto spelling (generation_config.candidate_count: 8) is held for every candidate: never past the amount', async () => {
    const project = `gemini-${randomUUID().slice(0, 6)}`;
    const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Write a saga.' }] }], generation_config: { candidate_count: 8 } });
    const answers = await Promise.all(Array.from({ length: 6 }, () => send(Number(new URL(stack!.url).port), 'POST', '/v1beta/models/gemini-2.5-flash:generateContent', headersFor(project), body)));
    expect(answers.map((answer) => answer.status).filter((status) => status !== 200 && status !== 429)).toEqual([]);
    expect(answers.some((answer) => answer.status === 200)).toBe(true);
    expect(await spentOf(project)).toBeLessThanOrEqual(AMOUNT_USD);
  });

  it('a Gemini body naming one field in both spellings is malformed, never forwarded', async () => {
    const testId = randomUUID();
    const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 16 }, generation_config: { max_output_tokens: 60_000 } });
    refusal(await send(Number(new URL(stack!.url).port), 'POST', '/v1beta/models/gemini-2.5-flash:generateContent', { ...headersFor('both'), [TEST_ID]: testId }, body), 400, 'x_malformed_body');
    expect(llm!.received(testId)).toHaveLength(0);
  });
});

/**
 * A client that hangs up after the decision, while the provider is still working on a non-streamed
 * call: the provider bills the whole call, the service never sees a response. The hold must be
 * charged (outcome no_response), never released as if nothing had been sent.
 */
describe('the red team hangs up before the answer (ext_proc, a budget)', () => {
  const ADMIN_TOKEN = 'redteam-admin-token';
  let dir: string | undefined;
  let upstream: Upstream | undefined;
  let stack: GovernanceStack | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-redteam-hangup-'));
    const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
    policy.spec.rateLimits = [];
    policy.spec.pricing = { defaults: false, version: 'redteam', models: [{ model: 'gpt-4o', input: '2.50', output: '10', contextWindow: 128_000 }] };
    policy.spec.budgets = [{ name: 'project-daily', key: ['project'], amount: 2, period: 'daily', timeZone: 'UTC' }];
    const policyPath = join(dir, 'policy.yaml');
    writeFileSync(policyPath, stringify(policy));
    // A provider that takes 1.5 s to answer (and bills the call whether or not anyone is still listening).
    upstream = await startUpstream({
      respond: (_request, response) => {
        setTimeout(() => {
          if (!response.destroyed) response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'gpt-4o', choices: [], usage: { prompt_tokens: 10, completion_tokens: 1000, total_tokens: 1010 } }));
        }, 1_500);
        return true;
      },
    });
    stack = await startGovernanceStack({ mode: 'ext-proc', upstreamPort: upstream.port, policyPath, serviceEnv: { GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('charges the hold of a call whose client left after it was sent upstream', async () => {
    const project = `hangup-${randomUUID().slice(0, 6)}`;
    const testId = randomUUID();
    const body = JSON.stringify({ model: 'gpt-4o', messages, max_completion_tokens: 1000 });
    const headers = { ...json, 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'c-1', 'x-genops-project': project, [TEST_ID]: testId, 'content-length': String(Buffer.byteLength(body)) };
    await new Promise<void>((resolve) => {
      const request = plainRequest({ host: '127.0.0.1', port: Number(new URL(stack!.url).port), method: 'POST', path: '/v1/chat/completions', headers, agent: false });
      request.on('error', () => resolve());
      request.end(body);
      // Hang up once the provider has the request.
      const poll = setInterval(() => {
        if (upstream!.requestsWith(TEST_ID, testId).length > 0) {
          clearInterval(poll);
          request.destroy();
          resolve();
        }
      }, 10);
    });
    const account = await eventually(async () => {
      const document = (await (await fetch(`${stack!.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
      const entry = document.budgets.flatMap((budget) => budget.accounts).find((candidate) => candidate.key === project);
      return entry && entry.reserved_usd === 0 ? entry : undefined;
    }, 'the abandoned call to be settled', 15_000);
    // 1,000 output tokens at $10/M and the input: at least the $0.01 the provider bills.
    expect(account.spent_usd).toBeGreaterThanOrEqual(0.01);
  });
});
