/**
 * The shapes users send, through the real Envoy with the shipped configs: OpenAI legacy
 * Completions, Azure OpenAI deployments, Gemini (JSON, SSE, streamed JSON array), Bedrock
 * Converse (JSON and the binary event stream), the batch APIs and background responses.
 * A stub provider answers in each one's wire format, split at arbitrary bytes; usage and cost
 * are exact, and the model rules apply to the model the path or the body names — the model the
 * provider serves, never one an attacker puts elsewhere.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { httpRequest, llmWire, STUB_MODEL_HEADER, STUB_USAGE_HEADER } from '../support/index.js';
import { context } from '../support/request-context.js';
import { eventually, scrape } from '../telemetry/telemetry-support.js';
import { expectedPico, picoToDecimal, useLlmStack, type LlmStack, type TestPrices, type Usage } from './priced-stack.js';

const PRICES: TestPrices = {
  'claude-sonnet-4-5': { input: '3', cachedInput: '0.30', cacheWrite: '3.75', output: '15' },
  'claude-haiku-4-5': { input: '1', cachedInput: '0.10', cacheWrite: '1.25', output: '5' },
  'gpt-4o': { input: '2.50', cachedInput: '1.25', output: '10' },
  'gpt-4o-mini': { input: '0.15', cachedInput: '0.075', output: '0.60' },
  'gpt-3.5-turbo-instruct': { input: '1.50', output: '2' },
  'gemini-2.5-pro': { input: '1.25', cachedInput: '0.125', output: '10' },
  'gemini-2.5-flash': { input: '0.30', cachedInput: '0.03', output: '2.50' },
};
const BUDGETED = 'budgeted';

function editTestPolicy(spec: Record<string, unknown>): void {
  spec.usage = { azureDeployments: { 'prod-chat': 'gpt-4o', 'cheap-chat': 'gpt-4o-mini' } };
  spec.pricing = { defaults: false, version: 'shapes-e2e', models: Object.entries(PRICES).map(([model, price]) => ({ model, ...price })) };
  spec.budgets = [{ name: 'budgeted-project', key: ['project'], amount: '50', period: 'daily', timeZone: 'UTC', maxOutputTokens: 700, selector: { projects: [BUDGETED] } }];
}

const useStack = (mode: 'ext-proc' | 'ext-authz') =>
  useLlmStack(mode, {
    prefix: 'genops-shapes-',
    editPolicy: editTestPolicy,
    // Cut every stream into many writes at arbitrary bytes (inside binary frames and characters).
    stub: { chunkDelayMs: 2, splitPoints: (body) => Array.from({ length: 23 }, (_, index) => Math.floor(((index + 1) * body.length) / 24) + (index % 5)) },
  });

const json = { 'content-type': 'application/json' };
const prompt = 'What is the capital of France?';
const completionsBody = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, prompt, max_tokens: 64, ...extra });
const chatBody = (model: string | undefined, extra: Record<string, unknown> = {}) => JSON.stringify({ ...(model ? { model } : {}), messages: [{ role: 'user', content: prompt }], max_tokens: 256, ...extra });
const geminiBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ contents: [{ role: 'user', parts: [{ text: prompt }] }], generationConfig: { maxOutputTokens: 512 }, ...extra });
const converseBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ messages: [{ role: 'user', content: [{ text: prompt }] }], system: [{ text: 'Be brief.' }], inferenceConfig: { maxTokens: 512 }, ...extra });
const invokeBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 512, system: 'Be brief.', messages: [{ role: 'user', content: prompt }], ...extra });
const vertexBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 512, messages: [{ role: 'user', content: prompt }], ...extra });
const batchBody = (...models: string[]) => JSON.stringify({ requests: models.map((model, index) => ({ custom_id: `r${index}`, params: { model, max_tokens: 100, messages: [{ role: 'user', content: prompt }] } })) });
const SONNET_BEDROCK = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const HAIKU_BEDROCK = 'anthropic.claude-haiku-4-5-20251001-v1:0';
const OPUS_PROFILE_ARN = 'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0';

/** What each config must refuse for product-team (claude-haiku and claude-sonnet only), the provider getting nothing. */
function describeModelRules(get: () => LlmStack, mode: string): void {
  describe(`${mode}: the model the provider serves is the model the rules see`, () => {
    const refusals: { name: string; path: string; body: string; reason: string; message: string }[] = [
      { name: 'legacy Completions with gpt-4o', path: '/v1/completions', body: completionsBody('gpt-4o'), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model gpt-4o' },
      { name: 'an Azure deployment of gpt-4o whose body names an allowed model', path: '/openai/deployments/prod-chat/chat/completions?api-version=2024-10-21', body: chatBody('claude-haiku-4-5'), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model gpt-4o' },
      { name: 'an Azure deployment not in the policy map (its own name is the model)', path: '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', body: chatBody(undefined), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model gpt-4o' },
      { name: 'Gemini 2.5 Pro (model in the path)', path: '/v1beta/models/gemini-2.5-pro:generateContent', body: geminiBody({ model: 'claude-haiku-4-5' }), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model gemini-2.5-pro' },
      { name: 'Gemini streamed with alt=sse', path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body: geminiBody(), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model gemini-2.5-flash' },
      { name: 'Bedrock Claude Opus through an inference-profile ARN, percent-encoded', path: `/model/${encodeURIComponent(OPUS_PROFILE_ARN)}/converse-stream`, body: converseBody(), reason: 'POLICY_DENY_MODEL', message: `team product-team may not use model ${OPUS_PROFILE_ARN}` },
      { name: 'Claude Opus through Bedrock InvokeModel', path: `/model/${encodeURIComponent('us.anthropic.claude-opus-4-1-20250805-v1:0')}/invoke`, body: invokeBody(), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model us.anthropic.claude-opus-4-1-20250805-v1:0' },
      { name: 'Claude Opus on Vertex AI (its @version in the path)', path: '/v1/projects/acme/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict', body: vertexBody(), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model claude-opus-4-1@20250805' },
      { name: 'an Anthropic batch with one Opus request among Haiku ones', path: '/v1/messages/batches', body: batchBody('claude-haiku-4-5', 'claude-opus-4-1', 'claude-haiku-4-5'), reason: 'POLICY_DENY_MODEL', message: 'team product-team may not use model claude-opus-4-1' },
      { name: 'an OpenAI Batch (its models are in an uploaded file)', path: '/v1/batches', body: JSON.stringify({ input_file_id: 'file-abc123', endpoint: '/v1/chat/completions', completion_window: '24h' }), reason: 'x_unreadable_model', message: 'openai.batches names its models inside an uploaded file, which the service cannot read, and team product-team may use only some models (spec.usage.batches: allow admits it unchecked)' },
    ];
    for (const refusal of refusals) {
      it(`refuses ${refusal.name}`, async () => {
        const testId = randomUUID();
        const response = await httpRequest(`${get().stack.url}${refusal.path}`, { method: 'POST', headers: { ...context({ 'x-genops-team': 'product-team' }), ...json, 'x-test-id': testId }, body: refusal.body });
        expect(response.status, response.body).toBe(403);
        expect(JSON.parse(response.body)).toMatchObject({ reason_code: refusal.reason, message: refusal.message });
        expect(get().llm.received(testId)).toEqual([]);
      });
    }

    it('lets product-team call Claude Haiku on Bedrock (a Bedrock id is the model it names) and an Azure deployment mapped to an allowed model is still gpt-4o-mini', async () => {
      const testId = randomUUID();
      const allowed = await httpRequest(`${get().stack.url}/model/${encodeURIComponent(HAIKU_BEDROCK)}/converse`, { method: 'POST', headers: { ...context({ 'x-genops-team': 'product-team' }), ...json, 'x-test-id': testId }, body: converseBody() });
      expect(allowed.status, allowed.body).toBe(200);
      expect(get().llm.received(testId)).toHaveLength(1);
      expect(get().llm.received(testId)[0]!.headers['x-genops-model']).toBe(HAIKU_BEDROCK);
      const mapped = await httpRequest(`${get().stack.url}/openai/deployments/cheap-chat/chat/completions?api-version=2024-10-21`, { method: 'POST', headers: { ...context({ 'x-genops-team': 'product-team' }), ...json }, body: chatBody('claude-haiku-4-5') });
      expect(mapped.status, mapped.body).toBe(403);
      expect(JSON.parse(mapped.body)).toMatchObject({ reason_code: 'POLICY_DENY_MODEL', message: 'team product-team may not use model gpt-4o-mini' });
    });

    it('a malformed path model or body is a 400 that names the problem', async () => {
      const badPath = await httpRequest(`${get().stack.url}/model/claude%ZZ/converse`, { method: 'POST', headers: { ...context(), ...json }, body: converseBody() });
      expect(badPath.status, badPath.body).toBe(400);
      expect(JSON.parse(badPath.body)).toMatchObject({ reason_code: 'x_malformed_body', message: expect.stringContaining('percent-encoding') });
      const badCap = await httpRequest(`${get().stack.url}/v1beta/models/gemini-2.5-flash:generateContent`, { method: 'POST', headers: { ...context(), ...json }, body: geminiBody({ generationConfig: { maxOutputTokens: 'lots' } }) });
      expect(badCap.status).toBe(400);
      expect(JSON.parse(badCap.body)).toMatchObject({ reason_code: 'x_malformed_body', message: 'request body field "generationConfig.maxOutputTokens" must be a positive integer (got string "lots")' });
    });
  });
}

describe('provider shapes through the real Envoy (ext_proc)', () => {
  const get = useStack('ext-proc');
  describeModelRules(get, 'ext_proc');

  interface Case {
    readonly name: string;
    readonly path: string;
    readonly body: string;
    readonly usage: Usage;
    readonly priced: string;
    readonly modelRequested: string;
    readonly modelServed?: string;
    readonly contentType: string;
    readonly api: string;
  }
  const cases: Case[] = [
    { name: 'legacy Completions JSON', path: '/v1/completions', body: completionsBody('gpt-3.5-turbo-instruct'), usage: { input: 5, output: 7 }, priced: 'gpt-3.5-turbo-instruct', modelRequested: 'gpt-3.5-turbo-instruct', contentType: 'application/json', api: 'openai.completions' },
    { name: 'legacy Completions SSE (include_usage turned on by the service)', path: '/v1/completions', body: completionsBody('gpt-3.5-turbo-instruct', { stream: true }), usage: { input: 900, output: 64 }, priced: 'gpt-3.5-turbo-instruct', modelRequested: 'gpt-3.5-turbo-instruct', contentType: 'text/event-stream', api: 'openai.completions' },
    { name: 'Azure chat JSON (deployment mapped to gpt-4o, the dated model served)', path: '/openai/deployments/prod-chat/chat/completions?api-version=2024-10-21', body: chatBody('gpt-4o-mini'), usage: { input: 1200, cachedInput: 256, output: 300 }, priced: 'gpt-4o', modelRequested: 'gpt-4o', modelServed: 'gpt-4o-2024-11-20', contentType: 'application/json', api: 'azure.chat' },
    { name: 'Azure chat SSE (a prompt-filter chunk first)', path: '/openai/deployments/cheap-chat/chat/completions?api-version=2024-10-21', body: chatBody(undefined, { stream: true, stream_options: { include_usage: true } }), usage: { input: 700, output: 120 }, priced: 'gpt-4o-mini', modelRequested: 'gpt-4o-mini', modelServed: 'gpt-4o-mini-2024-07-18', contentType: 'text/event-stream', api: 'azure.chat' },
    { name: 'Gemini generateContent JSON (cached and thinking tokens)', path: '/v1beta/models/gemini-2.5-pro:generateContent', body: geminiBody(), usage: { input: 3000, cachedInput: 1024, output: 900, reasoning: 600 }, priced: 'gemini-2.5-pro', modelRequested: 'gemini-2.5-pro', contentType: 'application/json', api: 'gemini.generate' },
    { name: 'Gemini streamGenerateContent SSE (alt=sse)', path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body: geminiBody(), usage: { input: 450, output: 210, reasoning: 110 }, priced: 'gemini-2.5-flash', modelRequested: 'gemini-2.5-flash', contentType: 'text/event-stream', api: 'gemini.stream' },
    { name: 'Gemini streamGenerateContent as a streamed JSON array', path: '/v1/models/gemini-2.5-flash:streamGenerateContent', body: geminiBody(), usage: { input: 451, cachedInput: 100, output: 211 }, priced: 'gemini-2.5-flash', modelRequested: 'gemini-2.5-flash', contentType: 'application/json', api: 'gemini.stream' },
    { name: 'Bedrock Converse JSON (cross-region Claude Sonnet id, cache reads and writes)', path: `/model/${encodeURIComponent(SONNET_BEDROCK)}/converse`, body: converseBody(), usage: { input: 2000, cachedInput: 1200, cacheWrite: 300, output: 400 }, priced: 'claude-sonnet-4-5', modelRequested: SONNET_BEDROCK, contentType: 'application/json', api: 'bedrock.converse' },
    { name: 'Bedrock InvokeModel JSON (Claude\'s own body and response)', path: `/model/${encodeURIComponent(SONNET_BEDROCK)}/invoke`, body: invokeBody(), usage: { input: 1800, cachedInput: 1000, cacheWrite: 200, output: 250 }, priced: 'claude-sonnet-4-5', modelRequested: SONNET_BEDROCK, modelServed: 'claude-sonnet-4-5-20250929', contentType: 'application/json', api: 'bedrock.invoke' },
    { name: 'Bedrock InvokeModel stream (Anthropic events inside event-stream chunks)', path: `/model/${encodeURIComponent(HAIKU_BEDROCK)}/invoke-with-response-stream`, body: invokeBody(), usage: { input: 900, cachedInput: 300, output: 123 }, priced: 'claude-haiku-4-5', modelRequested: HAIKU_BEDROCK, modelServed: 'claude-haiku-4-5-20251001', contentType: 'application/vnd.amazon.eventstream', api: 'bedrock.invoke-stream' },
    { name: 'Claude on Vertex AI, rawPredict JSON', path: '/v1/projects/acme/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict', body: vertexBody(), usage: { input: 1000, cachedInput: 600, cacheWrite: 100, output: 77 }, priced: 'claude-sonnet-4-5', modelRequested: 'claude-sonnet-4-5@20250929', modelServed: 'claude-sonnet-4-5-20250929', contentType: 'application/json', api: 'vertex.anthropic' },
    { name: 'Claude on Vertex AI, streamRawPredict SSE', path: '/v1/projects/acme/locations/global/publishers/anthropic/models/claude-haiku-4-5@20251001:streamRawPredict', body: vertexBody({ stream: true }), usage: { input: 400, output: 55 }, priced: 'claude-haiku-4-5', modelRequested: 'claude-haiku-4-5@20251001', modelServed: 'claude-haiku-4-5-20251001', contentType: 'text/event-stream', api: 'vertex.anthropic-stream' },
    { name: 'Bedrock ConverseStream (binary event stream)', path: `/model/${encodeURIComponent(HAIKU_BEDROCK)}/converse-stream`, body: converseBody(), usage: { input: 640, output: 96 }, priced: 'claude-haiku-4-5', modelRequested: HAIKU_BEDROCK, contentType: 'application/vnd.amazon.eventstream', api: 'bedrock.converse-stream' },
  ];

  for (const testCase of cases) {
    it(`counts ${testCase.name}: exact tokens, exact cost, one usage record`, async () => {
      const { stack } = get();
      const project = `shape-${randomUUID().slice(0, 8)}`;
      const headers: Record<string, string> = { ...context({ 'x-genops-project': project }), ...json, [STUB_USAGE_HEADER]: JSON.stringify(testCase.usage) };
      if (testCase.modelServed) headers[STUB_MODEL_HEADER] = testCase.modelServed;
      const response = await httpRequest(`${stack.url}${testCase.path}`, { method: 'POST', headers, body: testCase.body });
      expect(response.status, response.body).toBe(200);
      expect(response.headers['content-type']).toContain(testCase.contentType);
      const decisionId = String(response.headers['x-genops-decision-id']);
      const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.decision_id === decisionId), 'the usage record');
      const cost = expectedPico(PRICES, testCase.priced, testCase.usage);
      expect(record).toMatchObject({
        api: testCase.api,
        project,
        model_requested: testCase.modelRequested,
        model_served: testCase.modelServed ?? testCase.modelRequested,
        tokens: { input: testCase.usage.input, cached_input: testCase.usage.cachedInput ?? 0, cache_write: testCase.usage.cacheWrite ?? 0, output: testCase.usage.output, reasoning: testCase.usage.reasoning ?? 0 },
        cost: picoToDecimal(cost),
        priced_as: testCase.priced,
        estimated: false,
        outcome: 'completed',
      });
      const metrics = await scrape(stack.service.adminUrl);
      const labels = { genops_project: project, model: testCase.modelRequested };
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'input' })).toBe(testCase.usage.input);
      expect(metrics.value('genops_tokens_total', { ...labels, type: 'output' })).toBe(testCase.usage.output);
      expect(metrics.value('genops_cost_total', labels)).toBeCloseTo(Number(cost) / 1e12, 12);
    });
  }

  it('delivers the Bedrock event stream to the client byte for byte', async () => {
    const { stack } = get();
    const usage = llmWire.tokenUsage({ input: 64, output: 19 });
    const response = await fetch(`${stack.url}/model/${encodeURIComponent(HAIKU_BEDROCK)}/converse-stream`, { method: 'POST', headers: { ...context(), ...json, [STUB_USAGE_HEADER]: JSON.stringify(usage) }, body: converseBody() });
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(llmWire.bedrockConverseStream({ model: HAIKU_BEDROCK, usage, text: llmWire.DEFAULT_TEXT }))).toBe(true);
  });

  it('under an enforced budget: an uncapped Gemini or Bedrock request gets the cap in the field its provider reads', async () => {
    const { stack, llm } = get();
    for (const [path, body, capOf] of [
      ['/v1beta/models/gemini-2.5-flash:generateContent', geminiBody({ generationConfig: { temperature: 0.2 } }), (forwarded: Record<string, any>) => forwarded.generationConfig] as const,
      [`/model/${encodeURIComponent(SONNET_BEDROCK)}/converse`, converseBody({ inferenceConfig: { temperature: 0.2 } }), (forwarded: Record<string, any>) => forwarded.inferenceConfig] as const,
    ]) {
      const testId = randomUUID();
      const response = await httpRequest(`${stack.url}${path}`, { method: 'POST', headers: { ...context({ 'x-genops-project': BUDGETED }), ...json, 'x-test-id': testId }, body });
      expect(response.status, response.body).toBe(200);
      const [received] = llm.received(testId);
      const forwarded = JSON.parse(received!.body) as Record<string, any>;
      expect(capOf(forwarded)).toEqual(path.includes('gemini') ? { temperature: 0.2, maxOutputTokens: 700 } : { temperature: 0.2, maxTokens: 700 });
      // One round trip (FULL_DUPLEX_STREAMED): the new body goes on chunked, with no content-length to go stale.
      expect([received!.headers['content-length'], received!.headers['transfer-encoding']]).toEqual([undefined, 'chunked']);
    }
  });

  it('under an enforced budget: a SigV4-signed Bedrock body is never changed; without a cap it is refused, naming the field', async () => {
    const { stack, llm } = get();
    const sigv4 = { authorization: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7', 'x-amz-date': '20261201T120000Z' };
    const uncapped = randomUUID();
    const refused = await httpRequest(`${stack.url}/model/${encodeURIComponent(SONNET_BEDROCK)}/converse`, { method: 'POST', headers: { ...context({ 'x-genops-project': BUDGETED }), ...json, ...sigv4, 'x-test-id': uncapped }, body: converseBody({ inferenceConfig: { temperature: 0.2 } }) });
    expect(refused.status, refused.body).toBe(400);
    expect(JSON.parse(refused.body)).toMatchObject({ reason_code: 'x_output_cap_required', message: 'budget budgeted-project needs an output cap and the request body is signed (AWS SigV4), so the service cannot set one: send inferenceConfig.maxTokens' });
    expect(llm.received(uncapped)).toEqual([]);
    const capped = randomUUID();
    const body = converseBody();
    const passed = await httpRequest(`${stack.url}/model/${encodeURIComponent(SONNET_BEDROCK)}/converse`, { method: 'POST', headers: { ...context({ 'x-genops-project': BUDGETED }), ...json, ...sigv4, 'x-test-id': capped }, body });
    expect(passed.status, passed.body).toBe(200);
    expect(llm.received(capped)[0]!.body).toBe(body);
  });

  it('under an enforced budget: a batch and a background response are refused (x_unreservable_request); without one they pass, uncounted', async () => {
    const { stack, llm } = get();
    for (const [path, body, what] of [
      ['/v1/messages/batches', batchBody('claude-haiku-4-5', 'claude-sonnet-4-5'), 'a batch (anthropic.batches)'],
      ['/v1/responses', JSON.stringify({ model: 'gpt-4o', input: prompt, background: true }), 'a background response (background: true)'],
    ] as const) {
      const testId = randomUUID();
      const refused = await httpRequest(`${stack.url}${path}`, { method: 'POST', headers: { ...context({ 'x-genops-project': BUDGETED }), ...json, 'x-test-id': testId }, body });
      expect(refused.status, refused.body).toBe(403);
      expect(JSON.parse(refused.body)).toMatchObject({ reason_code: 'x_unreservable_request', message: expect.stringContaining(`budget budgeted-project cannot reserve for ${what}`) });
      expect(llm.received(testId)).toEqual([]);

      const project = `unbudgeted-${randomUUID().slice(0, 8)}`;
      const passed = await httpRequest(`${stack.url}${path}`, { method: 'POST', headers: { ...context({ 'x-genops-project': project }), ...json }, body });
      expect(passed.status, passed.body).toBe(200);
      expect(JSON.parse(passed.body)).toMatchObject(path.includes('batches') ? { type: 'message_batch', processing_status: 'in_progress' } : { status: 'queued' });
      // Billed later by the provider: no usage record claims a cost this exchange never showed.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(stack.service.logs().filter((line) => line.event === 'usage' && line.project === project)).toEqual([]);
    }
  });
});

describe('provider shapes through the real Envoy (ext_authz)', () => {
  const get = useStack('ext-authz');
  describeModelRules(get, 'ext_authz');
});
