/**
 * The shapes users send beyond OpenAI Chat/Responses/Embeddings and Anthropic Messages: legacy
 * Completions, Azure OpenAI deployments, Gemini, Bedrock Converse (JSON and the binary
 * event stream), the batch APIs and background responses — read from the path and the body,
 * metered from the providers' real responses split at every byte.
 */
import { describe, expect, it } from 'vitest';
import { isBodySigned, readAiBody } from '../../src/governance/ai-body.js';
import { createBudgeter } from '../../src/governance/budgeting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { createAiPathMatcher, DEFAULT_AI_PATHS, type AiApi } from '../../src/usage/ai-api.js';
import { DEFAULT_PRICE_TABLE } from '../../src/usage/pricing.js';
import { canonicalModelId, createModelMatcher } from '../../src/usage/model-pattern.js';
import { parseAiRequestBody, rewriteAiRequestBody, type AiRequest } from '../../src/usage/request-body.js';
import { createUsageMeter, type UsageReport } from '../../src/usage/response-usage.js';
import {
  bedrockConverseJson,
  bedrockConverseStream,
  bedrockInvokeStream,
  anthropicMessagesJson,
  DEFAULT_TEXT,
  eventStreamMessage,
  geminiErrorJson,
  geminiJson,
  geminiJsonArray,
  geminiSse,
  openAiCompletionsJson,
  openAiCompletionsSse,
  azurePromptFilterChunk,
  openAiChatSse,
  anthropicBatchJson,
  randomOffsets,
  seededRandom,
  splitAt,
  tokenUsage,
} from '../support/llm-wire.js';
import { estimateOf, expectSameReportWhateverTheSplits, meter } from './metering.js';

const matcher = createAiPathMatcher(DEFAULT_AI_PATHS);
const bytes = (body: unknown) => Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
const EVENTSTREAM = 'application/vnd.amazon.eventstream';

function parsed(api: AiApi, body: unknown, pathModel?: string): AiRequest {
  const result = parseAiRequestBody(api, bytes(body), pathModel !== undefined ? { pathModel } : undefined);
  if (!result.ok) throw new Error(`unexpected problem: ${result.problem.message}`);
  return result.request;
}

function problemOf(api: AiApi, body: unknown, pathModel?: string): string {
  const result = parseAiRequestBody(api, bytes(body), pathModel !== undefined ? { pathModel } : undefined);
  if (result.ok) throw new Error('expected a problem');
  return result.problem.message;
}

const llmWireAnthropicJson = (usage: ReturnType<typeof tokenUsage>) => anthropicMessagesJson({ model: 'claude-sonnet-4-5-20250929', usage });

describe('paths: the API, and the model or deployment a path names', () => {
  it.each([
    ['/v1/completions', { api: 'openai.completions' }],
    ['/v1/batches', { api: 'openai.batches' }],
    ['/v1/messages/batches', { api: 'anthropic.batches' }],
    ['/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21', { api: 'azure.chat', pathModel: 'prod-gpt4o', deployment: true }],
    ['/openai/deployments/prod-gpt4o/completions?api-version=2024-10-21', { api: 'azure.completions', pathModel: 'prod-gpt4o', deployment: true }],
    ['/openai/deployments/embed/embeddings?api-version=2024-10-21', { api: 'azure.embeddings', pathModel: 'embed', deployment: true }],
    ['/openai/responses?api-version=2025-04-01-preview', { api: 'azure.responses' }],
    ['/v1beta/models/gemini-2.5-pro:generateContent', { api: 'gemini.generate', pathModel: 'gemini-2.5-pro' }],
    ['/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', { api: 'gemini.stream', pathModel: 'gemini-2.5-flash' }],
    ['/v1/models/gemini-2.5-flash:streamGenerateContent', { api: 'gemini.stream', pathModel: 'gemini-2.5-flash' }],
    ['/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent', { api: 'gemini.generate', pathModel: 'gemini-2.5-pro' }],
    ['/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse', { api: 'bedrock.converse', pathModel: 'anthropic.claude-sonnet-4-5-20250929-v1:0' }],
    ['/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse-stream', { api: 'bedrock.converse-stream', pathModel: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' }],
    [
      '/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-opus-4-1-20250805-v1%3A0/converse',
      { api: 'bedrock.converse', pathModel: 'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0' },
    ],
    ['/bedrock//model/amazon.nova-pro-v1:0/converse/', { api: 'bedrock.converse', pathModel: 'amazon.nova-pro-v1:0' }],
    ['/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke', { api: 'bedrock.invoke', pathModel: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' }],
    ['/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream', { api: 'bedrock.invoke-stream', pathModel: 'anthropic.claude-haiku-4-5-20251001-v1:0' }],
    ['/v1beta/openai/chat/completions', { api: 'openai.chat' }],
    ['/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict', { api: 'vertex.anthropic', pathModel: 'claude-sonnet-4-5@20250929' }],
    ['/v1/projects/p/locations/global/publishers/anthropic/models/claude-haiku-4-5@20251001:streamRawPredict', { api: 'vertex.anthropic-stream', pathModel: 'claude-haiku-4-5@20251001' }],
  ] as const)('%s', (path, expected) => {
    expect(matcher.route(path)).toEqual(expected);
    expect(matcher.match(path)).toBe(expected.api);
  });

  it.each([
    '/v1/chat/completions/x',
    '/openai/deployments/a/b/chat/completions',
    '/v1beta/models/gemini-2.5-pro:countTokensX',
    '/v1beta/models/gemini-2.5-pro:GenerateContent',
    '/v1beta/models/gemini-2.5-pro%3AgenerateContent',
    '/v1beta/models/:generateContent',
    '/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-opus-4-1-v1:0/converse',
    '/model/x/converse-streamX',
    '/model/x/invoke-with-bidirectional-stream',
    '/v1/messages/batches/msgbatch_01/cancel',
  ])('%s is no shape the service reads', (path) => {
    expect(matcher.route(path)).toBeUndefined();
  });

  it('a path model that is not valid percent-encoding is a malformed request, not another path', () => {
    expect(matcher.route('/model/claude%ZZ/converse')).toMatchObject({ api: 'bedrock.converse', pathProblem: expect.stringContaining('percent-encoding') });
  });

  it('configured paths take placeholders too', () => {
    const custom = createAiPathMatcher({ 'gemini.generate': ['/gemini/{model}/generate'], 'azure.chat': ['/az/{deployment}/chat'] });
    expect(custom.route('/x/gemini/gemini-2.5-flash/generate')).toEqual({ api: 'gemini.generate', pathModel: 'gemini-2.5-flash' });
    expect(custom.route('/az/d1/chat')).toEqual({ api: 'azure.chat', pathModel: 'd1', deployment: true });
    expect(custom.route('/v1beta/models/gemini-2.5-pro:generateContent')).toBeUndefined();
  });
});

describe('request bodies of the new shapes', () => {
  it('legacy Completions: prompt as text or token ids, max_tokens (16 when absent), n and best_of, include_usage', () => {
    expect(parsed('openai.completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say this is a test' })).toMatchObject({ model: 'gpt-3.5-turbo-instruct', outputCap: 16, n: 1, stream: false, inputEstimateTokens: estimateOf('Say this is a test') });
    expect(parsed('openai.completions', { model: 'gpt-3.5-turbo-instruct', prompt: ['a'.repeat(40), 'b'.repeat(40)], max_tokens: 7, n: 2, best_of: 5, stream: true })).toMatchObject({ outputCap: 7, n: 5, stream: true, needsIncludeUsage: true, inputEstimateTokens: 20 });
    expect(parsed('openai.completions', { model: 'davinci-002', prompt: [[1, 2, 3], [4, 5]] }).inputEstimateTokens).toBe(5);
    expect(parsed('openai.completions', { model: 'davinci-002', prompt: 'x', stream: true, stream_options: { include_usage: true } }).needsIncludeUsage).toBe(false);
    expect(problemOf('openai.completions', { model: 'davinci-002', prompt: 'x', best_of: 0 })).toBe('request body field "best_of" must be a positive integer (got 0)');
  });

  it('Gemini: the model is the path\'s, the cap generationConfig.maxOutputTokens, candidateCount the choices', () => {
    const body = { contents: [{ role: 'user', parts: [{ text: 'Explain how AI works in a few words' }] }], generationConfig: { maxOutputTokens: 800, candidateCount: 2, thinkingConfig: { thinkingBudget: 0 } } };
    expect(parsed('gemini.generate', body, 'gemini-2.5-flash')).toMatchObject({ api: 'gemini.generate', model: 'gemini-2.5-flash', modelInPath: true, stream: false, outputCap: 800, n: 2 });
    expect(parsed('gemini.stream', { contents: body.contents }, 'gemini-2.5-pro')).toMatchObject({ stream: true, outputCap: undefined, n: 1 });
    // A body model is not what Gemini serves: it is ignored.
    expect(parsed('gemini.generate', { ...body, model: 'gemini-2.5-flash-lite' }, 'gemini-2.5-pro').model).toBe('gemini-2.5-pro');
    expect(problemOf('gemini.generate', { contents: [], generationConfig: { maxOutputTokens: '800' } }, 'gemini-2.5-pro')).toBe('request body field "generationConfig.maxOutputTokens" must be a positive integer (got string "800")');
    expect(problemOf('gemini.generate', { contents: [], generationConfig: [] }, 'gemini-2.5-pro')).toBe('request body field "generationConfig" must be an object (got array)');
    expect(parsed('gemini.generate', { contents: [{ parts: [{ inlineData: { mimeType: 'image/png', data: 'A'.repeat(100_000) } }] }] }, 'gemini-2.5-pro').inputEstimateTokens).toBe(1000 + 2);
  });

  it('Bedrock Converse: the model is the path\'s, the cap inferenceConfig.maxTokens; converse-stream streams', () => {
    const body = { messages: [{ role: 'user', content: [{ text: 'Hello' }] }], system: [{ text: 'Be brief.' }], inferenceConfig: { maxTokens: 512, temperature: 0.5 } };
    expect(parsed('bedrock.converse', body, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0')).toMatchObject({ model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', outputCap: 512, stream: false, modelInPath: true });
    expect(parsed('bedrock.converse-stream', { messages: body.messages }, 'amazon.nova-pro-v1:0')).toMatchObject({ stream: true, outputCap: undefined });
    expect(problemOf('bedrock.converse', { messages: [], inferenceConfig: { maxTokens: -1 } }, 'amazon.nova-pro-v1:0')).toBe('request body field "inferenceConfig.maxTokens" must be a positive integer (got -1)');
    expect(problemOf('bedrock.converse', { messages: [] }, ' ')).toBe('the model in the request path is empty');
  });

  it('Bedrock InvokeModel: Claude\'s Messages body (max_tokens), the model the path\'s; other model families are sent to Converse', () => {
    const body = { anthropic_version: 'bedrock-2023-05-31', max_tokens: 300, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello' }] };
    expect(parsed('bedrock.invoke', body, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0')).toMatchObject({ model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', outputCap: 300, stream: false, modelInPath: true });
    expect(parsed('bedrock.invoke-stream', body, 'anthropic.claude-haiku-4-5-20251001-v1:0').stream).toBe(true);
    expect(problemOf('bedrock.invoke', { prompt: 'x', max_gen_len: 100 }, 'meta.llama3-1-70b-instruct-v1:0')).toBe('Bedrock InvokeModel is read for Anthropic Claude models only, not meta.llama3-1-70b-instruct-v1:0: call it through Converse (/model/{model}/converse), whose body every model shares');
    expect(JSON.parse(rewriteAiRequestBody('bedrock.invoke', body, { outputCap: 50, model: 'x' }).toString('utf8'))).toEqual({ ...body, max_tokens: 50 });
  });

  it('Anthropic Message Batches: every request\'s model, distinct; a request without one is malformed', () => {
    const batch = { requests: [
      { custom_id: 'a', params: { model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] } },
      { custom_id: 'b', params: { model: 'claude-opus-4-1', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] } },
      { custom_id: 'c', params: { model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] } },
    ] };
    expect(parsed('anthropic.batches', batch)).toMatchObject({ model: 'claude-haiku-4-5', models: ['claude-haiku-4-5', 'claude-opus-4-1'], deferred: 'batch', stream: false });
    expect(problemOf('anthropic.batches', { requests: [batch.requests[0], { custom_id: 'x', params: { max_tokens: 1 } }] })).toBe('request body field "requests[1].params.model" is missing');
    expect(problemOf('anthropic.batches', { requests: [] })).toBe('request body field "requests" must be a non-empty array (got array)');
    expect(problemOf('anthropic.batches', { requests: [{ custom_id: 'x' }] })).toBe('request body field "requests[0].params" must be an object (got undefined)');
  });

  it('OpenAI Batch: no model can be read (they are in the uploaded file)', () => {
    expect(parsed('openai.batches', { input_file_id: 'file-abc123', endpoint: '/v1/chat/completions', completion_window: '24h' })).toMatchObject({ model: '', models: [], deferred: 'batch' });
    expect(problemOf('openai.batches', { endpoint: '/v1/chat/completions' })).toBe('request body field "input_file_id" must be a file id (got undefined)');
  });

  it('a background Responses request is deferred', () => {
    expect(parsed('openai.responses', { model: 'o3', input: 'x', background: true }).deferred).toBe('background');
    expect(parsed('openai.responses', { model: 'o3', input: 'x', background: false }).deferred).toBeUndefined();
  });

  it('Azure: the deployment serves the model the policy maps it to (else its own name); the body model is ignored', () => {
    const policy = loadPolicyText(`apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: azure }
spec:
  teams: { a: {} }
  usage:
    azureDeployments: { Prod-Chat: gpt-4o-2024-11-20, cheap: gpt-4o-mini }
`, 'azure.yaml');
    const read = (path: string, body: unknown) => readAiBody(policy.usage.paths.route(path)!, bytes(body), policy.usage, { canRewrite: false }).input.request;
    expect(read('/openai/deployments/prod-chat/chat/completions?api-version=2024-10-21', { model: 'gpt-4o-mini', messages: [] })).toMatchObject({ api: 'azure.chat', model: 'gpt-4o-2024-11-20', modelInPath: true });
    expect(read('/openai/deployments/unlisted/chat/completions', { messages: [] })).toMatchObject({ model: 'unlisted' });
    // Deployment names are case-insensitive on Azure, so here too.
    expect(read('/openai/deployments/PROD-CHAT/chat/completions', { messages: [] })).toMatchObject({ model: 'gpt-4o-2024-11-20' });
    expect(read('/openai/responses', { model: 'cheap', input: 'hi' })).toMatchObject({ api: 'azure.responses', model: 'gpt-4o-mini' });
    expect(readAiBody(policy.usage.paths.route('/model/a%ZZ/converse')!, bytes({}), policy.usage, { canRewrite: false }).input.problem?.message).toContain('percent-encoding');
  });
});

describe('the forwarded body: caps where each API reads them, the path model untouched', () => {
  const rewrite = (api: AiApi, body: Record<string, unknown>, changes: Parameters<typeof rewriteAiRequestBody>[2]) => JSON.parse(rewriteAiRequestBody(api, body, changes).toString('utf8')) as Record<string, unknown>;
  it('sets the output cap in each shape', () => {
    expect(rewrite('openai.completions', { model: 'm', prompt: 'x', stream: true }, { outputCap: 9, includeUsage: true })).toEqual({ model: 'm', prompt: 'x', stream: true, max_tokens: 9, stream_options: { include_usage: true } });
    expect(rewrite('gemini.generate', { contents: [], generationConfig: { temperature: 1 } }, { outputCap: 9, model: 'other' })).toEqual({ contents: [], generationConfig: { temperature: 1, maxOutputTokens: 9 } });
    expect(rewrite('bedrock.converse', { messages: [] }, { outputCap: 9, model: 'other' })).toEqual({ messages: [], inferenceConfig: { maxTokens: 9 } });
    expect(rewrite('azure.chat', { messages: [], max_tokens: 100 }, { outputCap: 9, includeUsage: true })).toEqual({ messages: [], max_tokens: 9, stream_options: { include_usage: true } });
  });
});

describe('responses of the new shapes, split at every byte', () => {
  const usage = tokenUsage({ input: 1200, cachedInput: 300, output: 250, reasoning: 90 });

  it('legacy Completions JSON and SSE (the usage chunk)', () => {
    const plain = tokenUsage({ input: 5, output: 7 });
    expectSameReportWhateverTheSplits('openai.completions', 'application/json', openAiCompletionsJson({ model: 'gpt-3.5-turbo-instruct', usage: plain }), { usage: plain, modelServed: 'gpt-3.5-turbo-instruct', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
    expectSameReportWhateverTheSplits('openai.completions', 'text/event-stream', openAiCompletionsSse({ model: 'gpt-3.5-turbo-instruct', usage: plain, includeUsage: true }), { usage: plain, modelServed: 'gpt-3.5-turbo-instruct', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
    expect(meter('openai.completions', 'text/event-stream', [bytes(openAiCompletionsSse({ model: 'gpt-3.5-turbo-instruct', usage: plain, includeUsage: false }))])).toMatchObject({ usage: undefined, complete: false, estimatedOutputTokens: estimateOf(DEFAULT_TEXT) });
  });

  it('Azure chat streams start with a prompt-filter chunk (no model): the model served is the first real one', () => {
    const plain = tokenUsage({ input: 50, output: 20, cachedInput: 10 });
    const body = azurePromptFilterChunk() + openAiChatSse({ model: 'gpt-4o-2024-11-20', usage: plain, includeUsage: true });
    expectSameReportWhateverTheSplits('azure.chat', 'text/event-stream', body, { usage: plain, modelServed: 'gpt-4o-2024-11-20', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
  });

  it('Gemini: usageMetadata (cached, thoughts and tool-use prompt included), JSON, SSE and the JSON-array stream; the last usage wins', () => {
    const expected: UsageReport = { usage, modelServed: 'gemini-2.5-pro', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined };
    expectSameReportWhateverTheSplits('gemini.generate', 'application/json; charset=UTF-8', geminiJson({ model: 'gemini-2.5-pro', usage, toolUsePrompt: 40 }), expected);
    expectSameReportWhateverTheSplits('gemini.stream', 'text/event-stream', geminiSse({ model: 'gemini-2.5-pro', usage, toolUsePrompt: 40 }), expected);
    expectSameReportWhateverTheSplits('gemini.stream', 'application/json; charset=UTF-8', geminiJsonArray({ model: 'gemini-2.5-pro', usage, toolUsePrompt: 40 }), expected);
  });

  it('Gemini streams cut before the final chunk: the input the provider said, estimated output, not complete', () => {
    const sse = meter('gemini.stream', 'text/event-stream', [bytes(geminiSse({ model: 'gemini-2.5-flash', usage, truncateAfterDeltas: true }))]);
    expect(sse).toMatchObject({ complete: false, usage: { input: 1200, output: 90, reasoning: 90 } });
    const array = meter('gemini.stream', 'application/json', [bytes(geminiJsonArray({ model: 'gemini-2.5-flash', usage, truncateAfterDeltas: true }))]);
    expect(array).toMatchObject({ complete: false, usage: { input: 1200 } });
    // The finish in one chunk, the final usage in the next: complete with the later usage.
    const finishThenUsage = `data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text: 'Hi' }], role: 'model' }, finishReason: 'STOP', index: 0 }], modelVersion: 'gemini-2.5-flash' })}\r\n\r\ndata: ${JSON.stringify({ usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 2, totalTokenCount: 12 }, modelVersion: 'gemini-2.5-flash' })}\r\n\r\n`;
    expect(meter('gemini.stream', 'text/event-stream', [bytes(finishThenUsage)])).toMatchObject({ complete: true, usage: { input: 10, output: 2 } });
    expect(meter('gemini.generate', 'application/json', [bytes(geminiErrorJson(429))])).toMatchObject({ usage: undefined, providerError: 'RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).' });
  });

  it('Bedrock Converse JSON: usage with cache reads and writes beside the uncached input', () => {
    const cached = tokenUsage({ input: 1200, cachedInput: 300, cacheWrite: 100, output: 250 });
    expectSameReportWhateverTheSplits('bedrock.converse', 'application/json', bedrockConverseJson({ model: 'x', usage: cached }), { usage: cached, modelServed: undefined, estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
  });

  it('Bedrock ConverseStream: the binary event stream, frames split at every byte, usage in the metadata event', () => {
    const cached = tokenUsage({ input: 1200, cachedInput: 300, cacheWrite: 100, output: 250 });
    const stream = bedrockConverseStream({ model: 'x', usage: cached });
    expectSameReportWhateverTheSplits('bedrock.converse-stream', EVENTSTREAM, stream, { usage: cached, modelServed: undefined, estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
  });

  it('Bedrock ConverseStream cut short, with an exception, or corrupted: estimated, the error named, nothing read past a bad CRC', () => {
    const cut = meter('bedrock.converse-stream', EVENTSTREAM, [bedrockConverseStream({ model: 'x', usage, truncateAfterDeltas: true })]);
    expect(cut).toEqual({ usage: undefined, modelServed: undefined, estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: false, providerError: undefined });
    const thrown = meter('bedrock.converse-stream', EVENTSTREAM, [bedrockConverseStream({ model: 'x', usage, exception: 'throttlingException' })]);
    expect(thrown).toMatchObject({ complete: false, providerError: 'throttlingException: Too many tokens, please wait before trying again.' });
    const stream = bedrockConverseStream({ model: 'x', usage });
    const corrupted = Buffer.from(stream);
    corrupted.writeUInt8(corrupted[corrupted.length - 20]! ^ 0xff, corrupted.length - 20); // inside the metadata event payload
    expect(meter('bedrock.converse-stream', EVENTSTREAM, [corrupted])).toMatchObject({ usage: undefined, complete: false });
    // A length prefix that cannot be a message ends the reading; memory stays bounded.
    const garbage = Buffer.concat([Buffer.from([0, 0, 0, 3]), stream]);
    const garbageMeter = createUsageMeter({ api: 'bedrock.converse-stream', contentType: EVENTSTREAM });
    garbageMeter.push(garbage);
    expect(garbageMeter.end()).toMatchObject({ usage: undefined, complete: false });
    expect(garbageMeter.retainedBytes).toBeLessThanOrEqual(garbage.length);
  });

  it('Bedrock ConverseStream: an oversized message is skipped and the usage after it still read; memory stays under the bound', () => {
    const big = eventStreamMessage({ ':event-type': 'contentBlockDelta', ':content-type': 'application/json', ':message-type': 'event' }, Buffer.from(JSON.stringify({ contentBlockIndex: 0, delta: { text: 'x'.repeat(2 * 1024 * 1024) } })));
    const plain = tokenUsage({ input: 900, output: 80 });
    const stream = Buffer.concat([big, bedrockConverseStream({ model: 'x', usage: plain })]);
    const usageMeter = createUsageMeter({ api: 'bedrock.converse-stream', contentType: EVENTSTREAM });
    let peak = 0;
    for (const chunk of splitAt(stream, Array.from({ length: 64 }, (_, index) => Math.floor((index * stream.length) / 64)))) {
      usageMeter.push(chunk);
      peak = Math.max(peak, usageMeter.retainedBytes);
    }
    expect(usageMeter.end()).toMatchObject({ usage: plain, complete: true });
    expect(peak).toBeLessThan(1024 * 1024);
  });

  it('Bedrock InvokeModel: Claude\'s JSON, and its stream of base64 Anthropic events in chunk messages, split at every byte', () => {
    const cached = tokenUsage({ input: 1500, cachedInput: 1000, cacheWrite: 200, output: 321 });
    expectSameReportWhateverTheSplits('bedrock.invoke', 'application/json', llmWireAnthropicJson(cached), { usage: cached, modelServed: 'claude-sonnet-4-5-20250929', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
    expectSameReportWhateverTheSplits('bedrock.invoke-stream', EVENTSTREAM, bedrockInvokeStream({ model: 'claude-sonnet-4-5-20250929', usage: cached }), { usage: cached, modelServed: 'claude-sonnet-4-5-20250929', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: true, providerError: undefined });
    const cut = meter('bedrock.invoke-stream', EVENTSTREAM, [bedrockInvokeStream({ model: 'claude-sonnet-4-5-20250929', usage: cached, truncateAfterDeltas: true })]);
    expect(cut).toMatchObject({ complete: false, usage: { input: 1500 }, estimatedOutputTokens: estimateOf(DEFAULT_TEXT) });
  });

  it('a batch\'s creation reply carries no usage: nothing is read', () => {
    expect(meter('anthropic.batches', 'application/json', [bytes(anthropicBatchJson(3))])).toEqual({ usage: undefined, modelServed: undefined, estimatedOutputTokens: 0, complete: false, providerError: undefined });
  });
});

describe('Bedrock ids are the models they name', () => {
  it.each([
    ['anthropic.claude-sonnet-4-5-20250929-v1:0', 'claude-sonnet-4-5-20250929'],
    ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'claude-sonnet-4-5-20250929'],
    ['global.anthropic.claude-haiku-4-5-20251001-v1:0', 'claude-haiku-4-5-20251001'],
    ['arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-opus-4-1-20250805-v1:0', 'claude-opus-4-1-20250805'],
    ['arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0:200k', 'claude-3-haiku-20240307'],
    ['amazon.nova-pro-v1:0', 'nova-pro'],
    ['arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3', 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3'],
    ['gpt-4o', 'gpt-4o'],
    ['claude-sonnet-4-5', 'claude-sonnet-4-5'],
    ['claude-opus-4-1@20250805', 'claude-opus-4-1-20250805'],
  ])('%s → %s', (id, canonical) => {
    expect(canonicalModelId(id)).toBe(canonical);
  });

  it('team rules and prices apply to the model a Bedrock id names', () => {
    expect(createModelMatcher(['claude-haiku']).matches('us.anthropic.claude-haiku-4-5-20251001-v1:0')).toBe(true);
    expect(createModelMatcher(['claude-haiku', 'claude-sonnet']).matches('us.anthropic.claude-opus-4-1-20250805-v1:0')).toBe(false);
    expect(createModelMatcher(['anthropic.claude-*']).matches('us.anthropic.claude-opus-4-1-20250805-v1:0')).toBe(false);
    expect(createModelMatcher(['us.anthropic.claude-*']).matches('us.anthropic.claude-opus-4-1-20250805-v1:0')).toBe(true);
    expect(DEFAULT_PRICE_TABLE.priceOf('us.anthropic.claude-sonnet-4-5-20250929-v1:0')?.pattern).toBe('claude-sonnet-4-5');
    expect(DEFAULT_PRICE_TABLE.priceOf('anthropic.claude-opus-4-1-20250805-v1:0')?.pattern).toBe('claude-opus-4-1');
    expect(DEFAULT_PRICE_TABLE.priceOf('amazon.nova-lite-v1:0')?.pattern).toBe('nova-lite');
  });

  it('Gemini prices: each model its own row, previews by glob, lite never priced as flash', () => {
    expect(DEFAULT_PRICE_TABLE.priceOf('gemini-2.5-pro')).toMatchObject({ pattern: 'gemini-2.5-pro', inputPico: 1_250_000n, outputPico: 10_000_000n, cachedInputPico: 125_000n });
    expect(DEFAULT_PRICE_TABLE.priceOf('gemini-2.5-flash')).toMatchObject({ inputPico: 300_000n, outputPico: 2_500_000n });
    expect(DEFAULT_PRICE_TABLE.priceOf('gemini-2.5-flash-lite')?.pattern).toBe('gemini-2.5-flash-lite');
    expect(DEFAULT_PRICE_TABLE.priceOf('gemini-2.5-flash-preview-09-2025')?.pattern).toBe('gemini-2.5-flash-preview-*');
    expect(DEFAULT_PRICE_TABLE.priceOf('gemini-2.5-flash-lite-preview-09-2025')?.pattern).toBe('gemini-2.5-flash-lite-preview-*');
  });
});

describe('decisions: every model a request names, batches and background responses under budgets', () => {
  const POLICY = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: shapes }
spec:
  teams:
    ml-platform: {}
    product-team: { models: [claude-haiku, claude-sonnet] }
  pricing: { defaults: true }
  budgets:
    - { name: product, key: [team], amount: "10", period: daily, selector: { teams: [product-team] } }
`;
  function decide(ai: AiRequest, team: string, policyText = POLICY, headers: Record<string, string> = {}) {
    const policy = loadPolicyText(policyText, 'shapes.yaml');
    const engine = createDecisionEngine({ policy: () => policy });
    const budgeter = createBudgeter({ ledger: createMemoryBudgetLedger({ clock: () => 0 }), policy: () => policy, clock: () => Date.UTC(2026, 11, 1), observer: { event() {}, account() {}, backendFailed() {}, overshoot() {} } });
    const governor = createGovernor({ engine, budgeter });
    return Promise.resolve(governor.evaluate({ headers: (name) => ({ 'x-genops-team': team, ...headers })[name], ai: { request: ai }, bodyBytes: 1000, settles: true }));
  }
  const batch = parsed('anthropic.batches', { requests: [{ custom_id: 'a', params: { model: 'claude-haiku-4-5', max_tokens: 10, messages: [] } }, { custom_id: 'b', params: { model: 'claude-opus-4-1', max_tokens: 10, messages: [] } }] });
  const fileBatch = parsed('openai.batches', { input_file_id: 'file-abc', endpoint: '/v1/chat/completions', completion_window: '24h' });

  it('a batch with one model the team may not use is refused, naming it', async () => {
    expect(await decide(batch, 'product-team')).toMatchObject({ result: 'BLOCKED', reasonCode: 'POLICY_DENY_MODEL', message: 'team product-team may not use model claude-opus-4-1' });
    expect(await decide(batch, 'ml-platform', POLICY, { 'x-genops-model': 'claude-haiku' })).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_model_mismatch' });
  });

  it('a batch is refused under an enforced budget (x_unreservable_request) unless the policy allows batches', async () => {
    const haikuOnly = parsed('anthropic.batches', { requests: [{ custom_id: 'a', params: { model: 'claude-haiku-4-5', max_tokens: 10, messages: [] } }] });
    expect(await decide(haikuOnly, 'product-team')).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_unreservable_request', httpStatus: 403, message: expect.stringContaining('budget product cannot reserve for a batch') });
    const unbudgeted = await decide(haikuOnly, 'ml-platform');
    expect(unbudgeted.result).toBe('ALLOWED');
    expect(unbudgeted.budget).toBeUndefined();
    const allowing = POLICY.replace('  pricing:', '  usage: { batches: allow }\n  pricing:');
    const allowed = await decide(haikuOnly, 'product-team', allowing);
    expect(allowed.result).toBe('ALLOWED');
    // Admitted unreserved: nothing is held for it.
    expect(allowed.budget).toBeUndefined();
  });

  it('an OpenAI Batch is refused for a team with a model list (its models cannot be read) unless allowed', async () => {
    expect(await decide(fileBatch, 'product-team')).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_unreadable_model', message: expect.stringContaining('team product-team may use only some models') });
    const noBudget = POLICY.replace(/ {2}budgets:[\s\S]*$/, '');
    expect(await decide(fileBatch, 'ml-platform', noBudget, { 'x-genops-model': 'gpt-4o' })).toMatchObject({ result: 'ALLOWED', context: { model: undefined } });
    expect(await decide(fileBatch, 'product-team', noBudget.replace('  pricing:', '  usage: { batches: allow }\n  pricing:'))).toMatchObject({ result: 'ALLOWED' });
  });

  it('a background response is refused under an enforced budget, with no way to allow it', async () => {
    const background = parsed('openai.responses', { model: 'claude-sonnet-4-5', input: 'x', background: true });
    expect(await decide(background, 'product-team', POLICY.replace('  pricing:', '  usage: { batches: allow }\n  pricing:'))).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_unreservable_request', message: expect.stringContaining('background response') });
    expect(await decide(background, 'ml-platform')).toMatchObject({ result: 'ALLOWED' });
  });

  it('a Bedrock id is checked as the model it names; a path model is never downgraded in the body', async () => {
    expect(await decide(parsed('bedrock.converse', { messages: [] }, 'us.anthropic.claude-opus-4-1-20250805-v1:0'), 'product-team')).toMatchObject({ result: 'BLOCKED', reasonCode: 'POLICY_DENY_MODEL' });
    const allowed = await decide(parsed('bedrock.converse', { messages: [], inferenceConfig: { maxTokens: 100 } }, 'us.anthropic.claude-haiku-4-5-20251001-v1:0'), 'product-team');
    expect(allowed).toMatchObject({ result: 'ALLOWED', context: { model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' } });
    // 1000 bytes × $1/M + 100 × $5/M = $0.0015
    expect(allowed.budget?.worstCaseNano).toBe(1_500_000);
  });

  it('a SigV4-signed body is read but never rewritten; AWS\'s UNSIGNED-PAYLOAD is not signed', () => {
    const policy = loadPolicyText(POLICY, 'signed.yaml');
    const signed = (headers: Record<string, string>) => isBodySigned((name) => headers[name]);
    expect(signed({ authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc' })).toBe(true);
    expect(signed({ authorization: 'AWS4-HMAC-SHA256 Credential=x', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' })).toBe(false);
    expect(signed({ 'x-amz-date': '20261201T120000Z' })).toBe(true);
    expect(signed({ ':path': '/model/x/converse?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc' })).toBe(true);
    expect(signed({ ':path': '/model/x/converse' })).toBe(false);
    expect(signed({ authorization: 'Bearer ABSK-bedrock-api-key' })).toBe(false);
    const read = readAiBody({ api: 'bedrock.converse', pathModel: 'amazon.nova-pro-v1:0' }, bytes({ messages: [] }), policy.usage, { canRewrite: true, signed: true });
    expect(read.input.request).toMatchObject({ signedBody: true, outputCap: undefined });
    expect(read.rewrite({ budget: { outputCap: 100 } } as never)).toBeUndefined();
  });

  it('a budget past its downgrade threshold leaves a path model (and an Azure deployment) alone: reserved at its own price', async () => {
    const policy = loadPolicyText(POLICY.replace('period: daily, selector', 'period: daily, downgrade: { at: 0.01, model: claude-haiku-4-5 }, selector'), 'downgrade.yaml');
    const engine = createDecisionEngine({ policy: () => policy });
    const budgeter = createBudgeter({ ledger: createMemoryBudgetLedger({ clock: () => 0 }), policy: () => policy, clock: () => Date.UTC(2026, 11, 1), observer: { event() {}, account() {}, backendFailed() {}, overshoot() {} } });
    const governor = createGovernor({ engine, budgeter });
    const decide = (ai: AiRequest) => Promise.resolve(governor.evaluate({ headers: (name) => ({ 'x-genops-team': 'product-team' })[name], ai: { request: ai }, bodyBytes: 1000, settles: true }));
    // The first request holds $0.0045 of $10: past the 0.01 % threshold for every later one.
    const first = await decide(parsed('anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] }));
    expect(first.budget?.downgradedTo).toBeUndefined();
    const body = await decide(parsed('anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] }));
    expect(body.budget?.downgradedTo).toBe('claude-haiku-4-5');
    const bedrock = await decide(parsed('bedrock.converse', { messages: [], inferenceConfig: { maxTokens: 100 } }, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0'));
    expect(bedrock).toMatchObject({ result: 'ALLOWED', context: { model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' } });
    expect(bedrock.budget?.downgradedTo).toBeUndefined();
    // 1000 bytes × $3/M + 100 × $15/M = $0.0045, the Sonnet price
    expect(bedrock.budget?.worstCaseNano).toBe(4_500_000);
    const azure = await decide(parsed('azure.responses', { model: 'claude-sonnet-4-5', input: 'x', max_output_tokens: 100 }));
    expect(azure.result).toBe('ALLOWED');
    expect(azure.budget?.downgradedTo).toBeUndefined();
  });
});

describe('the event-stream reader under hostile bytes', () => {
  it('never throws and stays bounded on 3,000 seeded mutations (flipped, truncated, spliced, bogus lengths), split at random bytes', () => {
    const random = seededRandom(20261204);
    const usage = tokenUsage({ input: 700, output: 90 });
    const sources = [bedrockConverseStream({ model: 'x', usage }), bedrockInvokeStream({ model: 'claude-haiku-4-5', usage })];
    for (let round = 0; round < 3000; round += 1) {
      const source = sources[round % sources.length]!;
      const mutated = Buffer.from(source);
      switch (round % 4) {
        case 0:
          for (let flips = 1 + Math.floor(random() * 8); flips > 0; flips -= 1) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
          break;
        case 1:
          // A length prefix claiming anything up to 4 GiB.
          mutated.writeUInt32BE(Math.floor(random() * 0xffffffff), 0);
          break;
        case 2: {
          const cut = Math.floor(random() * mutated.length);
          mutated.copy(mutated, cut, Math.floor(random() * mutated.length));
          break;
        }
        default:
          break;
      }
      const bytes = round % 4 === 3 ? mutated.subarray(0, Math.floor(random() * mutated.length)) : mutated;
      const api: AiApi = round % sources.length === 0 ? 'bedrock.converse-stream' : 'bedrock.invoke-stream';
      const usageMeter = createUsageMeter({ api, contentType: EVENTSTREAM });
      for (const chunk of splitAt(bytes, randomOffsets(random, bytes.length, 1 + Math.floor(random() * 20)))) {
        usageMeter.push(chunk);
        expect(usageMeter.retainedBytes).toBeLessThanOrEqual(bytes.length);
      }
      const report = usageMeter.end();
      expect(report.estimatedOutputTokens).toBeGreaterThanOrEqual(0);
      if (report.usage) expect(report.usage.input).toBeGreaterThanOrEqual(0);
    }
  });
});
