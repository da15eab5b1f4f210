import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AiApi } from '../../src/usage/ai-api.js';
import { createUsageMeter } from '../../src/usage/response-usage.js';
import { startStubLlm, type StubLlm } from '../support/stub-llm.js';

describe('stub LLM', () => {
  let stub: StubLlm;
  beforeAll(async () => {
    stub = await startStubLlm({ chunkDelayMs: 1 });
  });
  afterAll(async () => {
    await stub.stop();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${stub.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('answers chat JSON with the requested usage and records the raw request', async () => {
    const response = await post('/openai/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, { 'x-test-id': 't1', 'x-stub-usage': '{"input":100,"cachedInput":40,"output":7}' });
    expect(response.status).toBe(200);
    const json = (await response.json()) as { usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
    expect(json.usage.prompt_tokens).toBe(100);
    expect(json.usage.prompt_tokens_details.cached_tokens).toBe(40);
    const [recorded] = stub.received('t1');
    expect(recorded?.api).toBe('openai.chat');
    expect(JSON.parse(recorded!.rawBody.toString('utf8'))).toMatchObject({ model: 'gpt-4o' });
  });

  it('streams Anthropic SSE, sends provider error JSON and resets mid-stream when told', async () => {
    const stream = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 100, stream: true, messages: [] });
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const text = await stream.text();
    expect(text).toContain('event: message_stop');
    const failed = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] }, { 'x-stub-behavior': 'status=529' });
    expect(failed.status).toBe(529);
    expect(await failed.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    const reset = await post('/v1/chat/completions', { model: 'gpt-4o', stream: true, messages: [] }, { 'x-stub-behavior': 'reset-mid-stream' });
    await expect(reset.text()).rejects.toThrow();
  });

  it.each([
    ['/v1/chat/completions', 'openai.chat', { model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [] }],
    ['/v1/chat/completions', 'openai.chat', { model: 'gpt-4o', messages: [] }],
    ['/openai/v1/responses', 'openai.responses', { model: 'gpt-4.1', stream: true, input: 'hi' }],
    ['/v1/responses', 'openai.responses', { model: 'gpt-4.1', input: 'hi' }],
    ['/v1/embeddings', 'openai.embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'] }],
    ['/v1/messages', 'anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 100, stream: true, messages: [] }],
    ['/v1/messages', 'anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] }],
  ] as const)('%s %j: the usage it was told, read back by the meter over HTTP chunks', async (path, api, body) => {
    const embeddings = api === 'openai.embeddings';
    const usage = embeddings ? { input: 321, cachedInput: 0, cacheWrite: 0, output: 0, reasoning: 0 } : { input: 321, cachedInput: 100, cacheWrite: api === 'anthropic.messages' ? 20 : 0, output: 45, reasoning: api === 'anthropic.messages' ? 0 : 9 };
    const response = await post(path, body, { 'x-stub-usage': JSON.stringify(usage), 'x-stub-model': `${body.model}-2026-01-01` });
    const meter = createUsageMeter({ api: api as AiApi, contentType: response.headers.get('content-type') ?? undefined });
    for await (const chunk of response.body!) meter.push(chunk);
    expect(meter.end()).toMatchObject({ usage, modelServed: `${body.model}-2026-01-01`, complete: true, providerError: undefined });
  });

  const plain = { input: 321, cachedInput: 0, cacheWrite: 0, output: 45, reasoning: 0 };
  it.each([
    ['/v1/completions', 'openai.completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'hi', stream: true, stream_options: { include_usage: true } }, plain, 'served'],
    ['/openai/deployments/d1/chat/completions?api-version=2024-10-21', 'azure.chat', { stream: true, stream_options: { include_usage: true }, messages: [] }, { ...plain, cachedInput: 100 }, 'served'],
    ['/v1beta/models/gemini-2.5-flash:generateContent', 'gemini.generate', { contents: [] }, { ...plain, cachedInput: 100, reasoning: 9 }, 'served'],
    ['/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', 'gemini.stream', { contents: [] }, { ...plain, reasoning: 9 }, 'served'],
    ['/v1beta/models/gemini-2.5-flash:streamGenerateContent', 'gemini.stream', { contents: [] }, plain, 'served'],
    ['/model/amazon.nova-pro-v1%3A0/converse', 'bedrock.converse', { messages: [] }, { ...plain, cachedInput: 100, cacheWrite: 20 }, undefined],
    ['/model/amazon.nova-pro-v1%3A0/converse-stream', 'bedrock.converse-stream', { messages: [] }, { ...plain, cachedInput: 100, cacheWrite: 20 }, undefined],
    ['/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream', 'bedrock.invoke-stream', { anthropic_version: 'bedrock-2023-05-31', max_tokens: 10, messages: [] }, { ...plain, cachedInput: 100, cacheWrite: 20 }, 'served'],
  ] as const)('%s: the usage it was told, read back by the meter over HTTP chunks', async (path, api, body, usage, served) => {
    const response = await post(path, body, { 'x-stub-usage': JSON.stringify(usage), 'x-stub-model': 'served' });
    const meter = createUsageMeter({ api: api as AiApi, contentType: response.headers.get('content-type') ?? undefined });
    for await (const chunk of response.body!) meter.push(chunk);
    expect(meter.end()).toEqual({ usage, modelServed: served, estimatedOutputTokens: expect.any(Number), complete: true, providerError: undefined });
  });

  it('streams without the usage chunk when told to ignore include_usage', async () => {
    const response = await post('/v1/chat/completions', { model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [] }, { 'x-stub-behavior': 'ignore-include-usage' });
    const meter = createUsageMeter({ api: 'openai.chat', contentType: response.headers.get('content-type') ?? undefined });
    for await (const chunk of response.body!) meter.push(chunk);
    expect(meter.end()).toMatchObject({ usage: undefined, complete: false, estimatedOutputTokens: expect.any(Number) });
  });

  it('echoes non-AI paths like startUpstream', async () => {
    const response = await fetch(`${stub.url}/healthz`, { headers: { 'x-test-id': 't3' } });
    expect(await response.json()).toMatchObject({ method: 'GET', path: '/healthz' });
    expect(stub.received('t3')[0]?.api).toBeUndefined();
  });
});
