/**
 * Usage and cost through the real Envoy: the model comes from the request body (both shipped
 * configs), token usage from every response (ext_proc: OpenAI Chat Completions, Responses and
 * Embeddings, Anthropic Messages; JSON and SSE) from a stub provider speaking their wire formats,
 * priced exactly, visible in /metrics and in the usage records of the decision log.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  httpRequest,
  llmWire,
  STUB_BEHAVIOR_HEADER,
  STUB_MODEL_HEADER,
  STUB_USAGE_HEADER,
} from '../support/index.js';
import { disconnectMidResponse } from '../support/disconnect-mid-response.js';
import { context } from '../support/request-context.js';
import { eventually, scrape } from '../telemetry/telemetry-support.js';
import { expectedPico, picoToDecimal, useLlmStack, type LlmStack, type TestPrices, type Usage } from './priced-stack.js';

/** Prices of the test policy, USD per million tokens (pricing.defaults: false: only these). */
const PRICES: TestPrices = {
  'claude-sonnet-4-5': { input: '3', cachedInput: '0.30', cacheWrite: '3.75', output: '15' },
  'claude-haiku-4-5': { input: '1', cachedInput: '0.10', cacheWrite: '1.25', output: '5' },
  'claude-opus-4-1': { input: '15', cachedInput: '1.50', cacheWrite: '18.75', output: '75' },
  'gpt-4o': { input: '2.50', cachedInput: '1.25', output: '10' },
  'gpt-4o-mini': { input: '0.15', cachedInput: '0.075', output: '0.60' },
  'text-embedding-3-small': { input: '0.02', output: '0' },
};
const PRICE_TABLE = 'e2e-2026-12-01';
const MAX_BODY = 64 * 1024;
const TOKEN_LIMITED_PROJECT = 'token-limited';

function editTestPolicy(spec: Record<string, unknown>): void {
  // /v1/files carries uploads, not AI calls: governed on headers only, said explicitly (deny by default otherwise).
  spec.usage = { maxRequestBodyBytes: MAX_BODY, headersOnly: [{ prefix: '/v1/files' }] };
  spec.pricing = { defaults: false, version: PRICE_TABLE, models: Object.entries(PRICES).map(([model, price]) => ({ model, ...price })) };
  // A token rate limit for one project: 100 tokens a minute, charged when the usage is known.
  (spec.rateLimits as unknown[]).push({ name: 'tokens-per-project', key: ['project'], unit: 'tokens', capacity: 100, refill: { amount: 100, every: '60s' }, selector: { projects: [TOKEN_LIMITED_PROJECT] } });
}

const useUsageStack = (mode: 'ext-proc' | 'ext-authz', options: { chunkDelayMs?: number } = {}) =>
  useLlmStack(mode, { prefix: 'genops-usage-', editPolicy: editTestPolicy, stub: { chunkDelayMs: options.chunkDelayMs ?? 3 } });

const json = { 'content-type': 'application/json' };
const chatBody = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is the capital of France?' }], max_completion_tokens: 256, ...extra });
const messagesBody = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, max_tokens: 512, system: 'Be brief.', messages: [{ role: 'user', content: 'What is the capital of France?' }], ...extra });
const responsesBody = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, input: 'What is the capital of France?', max_output_tokens: 300, ...extra });
const embeddingsBody = (model: string) => JSON.stringify({ model, input: ['The capital of France is Paris.', 'Zürich is in Switzerland.'] });

function describeModelFromBody(get: () => LlmStack, mode: string): void {
  describe(`${mode}: the body's model is the model`, () => {
    it('refuses a model the team may not use when only the body names it, and the provider gets nothing', async () => {
      const testId = randomUUID();
      const response = await httpRequest(`${get().stack.url}/v1/messages`, {
        method: 'POST',
        headers: { ...context({ 'x-genops-team': 'product-team' }), ...json, 'x-test-id': testId },
        body: messagesBody('claude-opus-4-1-20250805'),
      });
      expect(response.status, response.body).toBe(403);
      expect(JSON.parse(response.body)).toMatchObject({ error: 'forbidden', reason_code: 'POLICY_DENY_MODEL', message: 'team product-team may not use model claude-opus-4-1-20250805' });
      expect(get().llm.received(testId)).toEqual([]);
    });

    it('lets the team use a real provider id of a family it may use (claude-haiku → claude-haiku-4-5-20251001)', async () => {
      const testId = randomUUID();
      const response = await httpRequest(`${get().stack.url}/v1/messages`, {
        method: 'POST',
        headers: { ...context({ 'x-genops-team': 'product-team', 'x-genops-customer-tier': 'standard' }), ...json, 'x-test-id': testId, 'accept-encoding': 'gzip, br' },
        body: messagesBody('claude-haiku-4-5-20251001'),
      });
      expect(response.status, response.body).toBe(200);
      const [received] = get().llm.received(testId);
      expect(JSON.parse(received!.body).model).toBe('claude-haiku-4-5-20251001');
      expect(received!.headers['x-genops-model']).toBe('claude-haiku-4-5-20251001');
      expect(received!.headers['x-genops-route']).toBe('claude-haiku');
      // Usage can only be read from an uncompressed response.
      expect(received!.headers['accept-encoding']).toBeUndefined();
    });

    it('refuses an x-genops-model header that names another model than the body (400 x_model_mismatch)', async () => {
      const testId = randomUUID();
      const response = await httpRequest(`${get().stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...context({ 'x-genops-team': 'product-team', 'x-genops-model': 'claude-haiku' }), ...json, 'x-test-id': testId },
        body: chatBody('claude-opus-4-1'),
      });
      expect(response.status, response.body).toBe(400);
      expect(JSON.parse(response.body)).toMatchObject({ error: 'bad_request', reason_code: 'x_model_mismatch', message: 'x-genops-model names claude-haiku but the request body asks for claude-opus-4-1' });
      expect(get().llm.received(testId)).toEqual([]);
    });

    it('reads the body of an AI path spelt with repeated slashes too', async () => {
      const response = await httpRequest(`${get().stack.url}/v1//chat//completions`, { method: 'POST', headers: { ...context({ 'x-genops-team': 'product-team' }), ...json }, body: chatBody('claude-opus-4-1') });
      expect(response.status, response.body).toBe(403);
      expect(JSON.parse(response.body).reason_code).toBe('POLICY_DENY_MODEL');
    });

    it('keeps gpt-4o and gpt-4o-mini apart: a tier allowed gpt-4o-mini only may not call gpt-4o', async () => {
      const basic = context({ 'x-genops-team': 'ml-research', 'x-genops-customer-tier': 'basic' });
      const denied = await httpRequest(`${get().stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...basic, ...json }, body: chatBody('gpt-4o-2024-08-06') });
      expect(denied.status, denied.body).toBe(403);
      expect(JSON.parse(denied.body).message).toBe('basic tier may not use model gpt-4o-2024-08-06');
    });

    const badBodies: [string, string | Buffer, number, string, RegExp][] = [
      ['not JSON', 'model=gpt-4o', 400, 'x_malformed_body', /not valid JSON/],
      ['truncated JSON', '{"model":"gpt-4o","messages":[{"role":"user","content":"Hel', 400, 'x_malformed_body', /not valid JSON/],
      ['a number for model', '{"model":4,"messages":[]}', 400, 'x_malformed_body', /"model" must be a string/],
      ['no model', '{"messages":[{"role":"user","content":"Hi"}]}', 400, 'x_malformed_body', /"model"/],
      ['a JSON array', '[{"model":"gpt-4o"}]', 400, 'x_malformed_body', /object/],
      ['over the size limit', chatBody('gpt-4o', { padding: 'x'.repeat(MAX_BODY) }), 413, 'x_body_too_large', new RegExp(`limit is ${MAX_BODY}`)],
    ];
    for (const [name, body, status, reason, message] of badBodies) {
      it(`refuses ${name} with ${status} ${reason} and a message naming the problem`, async () => {
        const testId = randomUUID();
        const response = await httpRequest(`${get().stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context(), ...json, 'x-test-id': testId }, body });
        expect(response.status, response.body).toBe(status);
        expect(response.headers['content-type']).toBe('application/json');
        const denial = JSON.parse(response.body) as { reason_code: string; message: string; decision_id: string };
        expect(denial.reason_code).toBe(reason);
        expect(denial.message).toMatch(message);
        expect(get().llm.received(testId)).toEqual([]);
      });
    }

    it('keeps deciding after bad bodies: a good request on the same connection still passes', async () => {
      const response = await httpRequest(`${get().stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context(), ...json }, body: chatBody('gpt-4o') });
      expect(response.status, response.body).toBe(200);
    });

    it('decides a headers-only path (spec.usage.headersOnly) on its headers without reading its body', async () => {
      const testId = randomUUID();
      const response = await httpRequest(`${get().stack.url}/v1/files`, { method: 'POST', headers: { ...context(), 'content-type': 'text/plain', 'x-test-id': testId }, body: 'not json at all' });
      expect(response.status, response.body).toBe(200);
      expect(get().llm.received(testId)[0]?.body).toBe('not json at all');
    });
  });
}

describe('usage and cost through the real Envoy (ext_proc)', () => {
  const get = useUsageStack('ext-proc');
  describeModelFromBody(get, 'ext_proc');

  interface Case {
    readonly name: string;
    readonly path: string;
    readonly body: string;
    readonly team: string;
    readonly usage: Usage;
    /** The pattern whose price applies. */
    readonly priced: string;
    readonly modelRequested: string;
    readonly modelServed?: string;
    readonly behavior?: string;
    readonly sse: boolean;
  }
  const cases: Case[] = [
    { name: 'OpenAI chat JSON (dated snapshot served)', path: '/v1/chat/completions', body: chatBody('gpt-4o'), team: 'ml-research', usage: { input: 1200, cachedInput: 200, output: 300 }, priced: 'gpt-4o', modelRequested: 'gpt-4o', modelServed: 'gpt-4o-2024-08-06', sse: false },
    { name: 'OpenAI chat SSE with include_usage', path: '/openai/v1/chat/completions', body: chatBody('gpt-4o-mini', { stream: true, stream_options: { include_usage: true } }), team: 'ml-platform', usage: { input: 950, cachedInput: 128, output: 211, reasoning: 0 }, priced: 'gpt-4o-mini', modelRequested: 'gpt-4o-mini', sse: true },
    { name: 'OpenAI Responses SSE with reasoning', path: '/v1/responses', body: responsesBody('gpt-4o-mini', { stream: true }), team: 'ml-platform', usage: { input: 800, cachedInput: 100, output: 150, reasoning: 64 }, priced: 'gpt-4o-mini', modelRequested: 'gpt-4o-mini', sse: true },
    { name: 'OpenAI Responses JSON', path: '/v1/responses', body: responsesBody('gpt-4o'), team: 'data-science', usage: { input: 333, output: 77 }, priced: 'gpt-4o', modelRequested: 'gpt-4o', sse: false },
    { name: 'OpenAI Embeddings JSON', path: '/v1/embeddings', body: embeddingsBody('text-embedding-3-small'), team: 'ml-platform', usage: { input: 500, output: 0 }, priced: 'text-embedding-3-small', modelRequested: 'text-embedding-3-small', sse: false },
    { name: 'Anthropic Messages JSON with cache reads and writes', path: '/v1/messages', body: messagesBody('claude-sonnet-4-5'), team: 'ml-research', usage: { input: 2000, cachedInput: 1500, cacheWrite: 300, output: 400 }, priced: 'claude-sonnet-4-5', modelRequested: 'claude-sonnet-4-5', sse: false },
    { name: 'Anthropic Messages SSE, cumulative message_delta', path: '/v1/messages', body: messagesBody('claude-haiku-4-5-20251001', { stream: true }), team: 'ml-platform', usage: { input: 1024, cachedInput: 512, cacheWrite: 0, output: 345 }, priced: 'claude-haiku-4-5', modelRequested: 'claude-haiku-4-5-20251001', behavior: 'two-message-deltas,delta-carries-input', sse: true },
  ];

  for (const testCase of cases) {
    it(`counts ${testCase.name}: exact tokens by type, exact cost, one usage record`, async () => {
      const { stack } = get();
      const project = `usage-${randomUUID().slice(0, 8)}`;
      const headers: Record<string, string> = { ...context({ 'x-genops-team': testCase.team, 'x-genops-project': project }), ...json, [STUB_USAGE_HEADER]: JSON.stringify(testCase.usage) };
      if (testCase.modelServed) headers[STUB_MODEL_HEADER] = testCase.modelServed;
      if (testCase.behavior) headers[STUB_BEHAVIOR_HEADER] = testCase.behavior;
      const response = await httpRequest(`${stack.url}${testCase.path}`, { method: 'POST', headers, body: testCase.body });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['content-type']).toContain(testCase.sse ? 'text/event-stream' : 'application/json');
      const decisionId = String(response.headers['x-genops-decision-id']);

      const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.decision_id === decisionId), 'the usage record');
      const cost = expectedPico(PRICES, testCase.priced, testCase.usage);
      expect(record).toMatchObject({
        api: expect.any(String),
        team: testCase.team,
        project,
        customer_id: headers['x-genops-customer-id'],
        model_requested: testCase.modelRequested,
        model_served: testCase.modelServed ?? testCase.modelRequested,
        tokens: { input: testCase.usage.input, cached_input: testCase.usage.cachedInput ?? 0, cache_write: testCase.usage.cacheWrite ?? 0, output: testCase.usage.output, reasoning: testCase.usage.reasoning ?? 0 },
        cost: picoToDecimal(cost),
        currency: 'USD',
        price_table: PRICE_TABLE,
        estimated: false,
        outcome: 'completed',
        upstream_status: 200,
      });

      const metrics = await scrape(stack.service.adminUrl);
      const labels = { genops_project: project, genops_team: testCase.team, model: testCase.modelRequested };
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'input' })).toBe(testCase.usage.input);
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'output' })).toBe(testCase.usage.output);
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'cached_input' })).toBe(testCase.usage.cachedInput ?? 0);
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'cache_write' })).toBe(testCase.usage.cacheWrite ?? 0);
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'reasoning' })).toBe(testCase.usage.reasoning ?? 0);
      expect(metrics.value('genops_cost_total', labels)).toBeCloseTo(Number(cost) / 1e12, 12);
    });
  }

  it('sums exactly over many requests: 40 identical calls cost 40 × one call, to the pico-dollar', async () => {
    const { stack } = get();
    const project = `sum-${randomUUID().slice(0, 8)}`;
    const usage = { input: 1111, cachedInput: 111, output: 333 };
    const send = () => httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json, [STUB_USAGE_HEADER]: JSON.stringify(usage) }, body: chatBody('gpt-4o-mini') });
    // Ten at a time: the sum, not the concurrency, is what this test is about.
    for (let batch = 0; batch < 4; batch++) {
      const responses = await Promise.all(Array.from({ length: 10 }, send));
      for (const response of responses) expect(response.status, response.body).toBe(200);
    }
    const total = await eventually(async () => {
      const value = (await scrape(stack.service.adminUrl)).value('genops_tokens_total', { genops_project: project, type: 'input' });
      return value === 40 * usage.input ? value : undefined;
    }, 'all 40 usage records');
    expect(total).toBe(44_440);
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_cost_total', { genops_project: project })).toBeCloseTo((40 * Number(expectedPico(PRICES, 'gpt-4o-mini', usage))) / 1e12, 12);
  });

  it('turns on include_usage for a stream that did not ask, framed to its new length, and counts its usage', async () => {
    const { stack, llm } = get();
    const testId = randomUUID();
    const project = `inject-${randomUUID().slice(0, 8)}`;
    const usage = { input: 77, output: 23 };
    const body = chatBody('gpt-4o', { stream: true });
    const response = await httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json, 'x-test-id': testId, [STUB_USAGE_HEADER]: JSON.stringify(usage) }, body });
    expect(response.status, response.body).toBe(200);
    const [received] = llm.received(testId);
    const forwarded = JSON.parse(received!.body) as Record<string, unknown>;
    expect(forwarded.stream_options).toEqual({ include_usage: true });
    expect({ ...forwarded, stream_options: undefined }).toEqual({ ...JSON.parse(body), stream_options: undefined });
    // One round trip (FULL_DUPLEX_STREAMED): the new body goes on chunked, with no content-length to go stale.
    expect([received!.headers['content-length'], received!.headers['transfer-encoding']]).toEqual([undefined, 'chunked']);
    const metrics = await eventually(async () => {
      const scraped = await scrape(stack.service.adminUrl);
      return scraped.value('genops_tokens_total', { genops_project: project, type: 'output' }) === 23 ? scraped : undefined;
    }, 'the injected stream usage');
    expect(metrics.value('genops_tokens_total', { genops_project: project, type: 'input' })).toBe(77);
  });

  it('delivers a streamed response to the client intact, byte for byte', async () => {
    const { stack } = get();
    const usage = llmWire.tokenUsage({ input: 64, cachedInput: 0, output: 19 });
    for (const [path, body, expected] of [
      ['/v1/chat/completions', chatBody('gpt-4o-mini', { stream: true, stream_options: { include_usage: true } }), llmWire.openAiChatSse({ model: 'gpt-4o-mini', usage, text: llmWire.DEFAULT_TEXT, includeUsage: true })],
      ['/v1/messages', messagesBody('claude-sonnet-4-5', { stream: true }), llmWire.anthropicMessagesSse({ model: 'claude-sonnet-4-5', usage, text: llmWire.DEFAULT_TEXT })],
      ['/v1/responses', responsesBody('gpt-4o', { stream: true }), llmWire.openAiResponsesSse({ model: 'gpt-4o', usage, text: llmWire.DEFAULT_TEXT })],
    ] as const) {
      const response = await httpRequest(`${stack.url}${path}`, { method: 'POST', headers: { ...context(), ...json, [STUB_USAGE_HEADER]: JSON.stringify(usage) }, body });
      expect(response.status, response.body).toBe(200);
      expect(response.body, path).toBe(expected);
    }
  });

  it('counts a model with no price as unpriced, never as free, with one warning per model', async () => {
    const { stack } = get();
    const project = `unpriced-${randomUUID().slice(0, 8)}`;
    const send = () => httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json, [STUB_USAGE_HEADER]: JSON.stringify({ input: 10, output: 5 }) }, body: chatBody('mistral-large-2411') });
    for (let index = 0; index < 3; index++) expect((await send()).status).toBe(200);
    const records = await eventually(() => {
      const found = stack.service.logs().filter((line) => line.event === 'usage' && line.project === project);
      return found.length === 3 ? found : undefined;
    }, 'three usage records');
    for (const record of records) expect(record).toMatchObject({ cost: null, tokens: { input: 10, output: 5 }, estimated: false });
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_usage_unpriced_total', { model: 'mistral-large-2411' })).toBe(3);
    expect(metrics.value('genops_tokens_total', { genops_project: project, type: 'input' })).toBe(30);
    expect(metrics.find('genops_cost_total', { genops_project: project })).toEqual([]);
    expect(stack.service.logs().filter((line) => line.event === 'model_unpriced' && line.model === 'mistral-large-2411')).toHaveLength(1);
  });

  it('records an upstream 5xx with its status and no charge', async () => {
    const { stack } = get();
    const project = `error-${randomUUID().slice(0, 8)}`;
    const response = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json, [STUB_BEHAVIOR_HEADER]: 'status=529' }, body: messagesBody('claude-sonnet-4-5', { stream: true }) });
    expect(response.status).toBe(529);
    const decisionId = String(response.headers['x-genops-decision-id']);
    const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.decision_id === decisionId), 'the usage record');
    expect(record).toMatchObject({ outcome: 'upstream_error', upstream_status: 529, estimated: false, cost: '0', tokens: { input: 0, output: 0 } });
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_tokens_total', { genops_project: project })).toBe(0);
  });

  it('estimates a stream whose usage never comes, and says so', async () => {
    const { stack } = get();
    const project = `nousage-${randomUUID().slice(0, 8)}`;
    const response = await httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json, [STUB_BEHAVIOR_HEADER]: 'ignore-include-usage' }, body: chatBody('gpt-4o', { stream: true }) });
    expect(response.status).toBe(200);
    const decisionId = String(response.headers['x-genops-decision-id']);
    const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.decision_id === decisionId), 'the usage record') as { tokens: { input: number; output: number }; estimated: boolean; outcome: string };
    expect(record.estimated).toBe(true);
    expect(record.outcome).toBe('ended_without_usage');
    expect(record.tokens.input).toBeGreaterThan(0);
    // DEFAULT_TEXT was streamed: its estimate (characters ÷ 4) is the output charged.
    expect(record.tokens.output).toBeGreaterThanOrEqual(Math.ceil(llmWire.DEFAULT_TEXT.length / 4) - 2);
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_usage_records_total', { outcome: 'ended_without_usage', estimated: 'true' })).toBeGreaterThanOrEqual(1);
  });

  it('estimates a stream the upstream resets midway', async () => {
    const { stack } = get();
    const project = `reset-${randomUUID().slice(0, 8)}`;
    const usage = { input: 900, output: 400 };
    const response = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json, [STUB_USAGE_HEADER]: JSON.stringify(usage), [STUB_BEHAVIOR_HEADER]: 'reset-mid-stream' }, body: messagesBody('claude-sonnet-4-5', { stream: true }) }).catch((error: Error) => error);
    void response; // the client sees a truncated stream or a reset: either way the service must account for it
    const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.project === project), 'the usage record') as { tokens: { input: number; output: number }; estimated: boolean; outcome: string };
    expect(record.estimated).toBe(true);
    expect(['interrupted', 'ended_without_usage']).toContain(record.outcome);
    // message_start carried the input count: it is kept, not estimated.
    expect(record.tokens.input).toBe(900);
    expect(record.tokens.output).toBeGreaterThan(0);
  });
});

describe('token rate limits through the real Envoy (ext_proc)', () => {
  const get = useUsageStack('ext-proc');

  it('admits while the bucket is positive, charges the tokens the provider reported, then refuses with token headers', async () => {
    const { stack } = get();
    const send = (usage: Usage) =>
      httpRequest(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { ...context({ 'x-genops-project': TOKEN_LIMITED_PROJECT }), ...json, [STUB_USAGE_HEADER]: JSON.stringify(usage) }, body: chatBody('gpt-4o') });
    const first = await send({ input: 60, output: 30 });
    expect(first.status, first.body).toBe(200);
    // 90 of 100 tokens used: still positive, so the next request is admitted and takes the bucket into debt.
    const second = await send({ input: 80, output: 40 });
    expect(second.status, second.body).toBe(200);
    const third = await eventually(async () => {
      const response = await send({ input: 1, output: 1 });
      return response.status === 429 ? response : undefined;
    }, 'the token bucket to be charged');
    const denial = JSON.parse(third.body) as { reason_code: string; message: string; retry_after_seconds: number };
    expect(denial.reason_code).toBe('RATE_LIMITED');
    expect(denial.message).toMatch(/^token rate limit tokens-per-project exceeded: 100 tokens per 60s/);
    expect(Number(third.headers['retry-after'])).toBeGreaterThan(0);
    expect(third.headers['ratelimit-policy']).toBe('"tokens-per-project";q=100;qu="tokens";w=60');
    expect(third.headers['ratelimit']).toMatch(/^"tokens-per-project";r=0;/);
  });
});

describe('usage when the client goes away mid-stream (ext_proc)', () => {
  const get = useUsageStack('ext-proc', { chunkDelayMs: 150 });

  it('charges the output streamed so far, estimated, once', async () => {
    const { stack } = get();
    const project = `gone-${randomUUID().slice(0, 8)}`;
    const body = messagesBody('claude-sonnet-4-5', { stream: true });
    const status = await disconnectMidResponse(`${stack.url}/v1/messages`, { headers: { ...context({ 'x-genops-project': project }), ...json, [STUB_USAGE_HEADER]: JSON.stringify({ input: 1500, output: 600 }) }, body });
    expect(status).toBe(200);
    const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.project === project), 'the usage record', 15_000) as { tokens: { input: number; output: number }; estimated: boolean; outcome: string };
    expect(record).toMatchObject({ estimated: true, outcome: 'interrupted' });
    expect(record.tokens.input).toBe(1500);
    expect(record.tokens.output).toBeGreaterThan(0);
    expect(record.tokens.output).toBeLessThan(600);
    // Exactly one record for the exchange, however the stream ended.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(stack.service.logs().filter((line) => line.event === 'usage' && line.project === project)).toHaveLength(1);
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_usage_records_total', { outcome: 'interrupted', estimated: 'true' })).toBeGreaterThanOrEqual(1);
  });
});

describe('the model from the body through the real Envoy (ext_authz, with_request_body)', () => {
  const get = useUsageStack('ext-authz');
  describeModelFromBody(get, 'ext_authz');
});
