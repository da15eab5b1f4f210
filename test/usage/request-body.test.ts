import { describe, expect, it } from 'vitest';
import type { AiApi } from '../../src/usage/ai-api.js';
import { parseAiRequestBody, rewriteAiRequestBody, type AiRequest, type BodyProblem } from '../../src/usage/request-body.js';

const bytes = (body: unknown) => Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');

function parsed(api: AiApi, body: unknown): AiRequest {
  const result = parseAiRequestBody(api, bytes(body));
  if (!result.ok) throw new Error(`unexpected problem: ${result.problem.message}`);
  return result.request;
}

function problemOf(api: AiApi, body: unknown): BodyProblem {
  const result = parseAiRequestBody(api, bytes(body));
  if (result.ok) throw new Error('expected a problem');
  return result.problem;
}

const chatMessages = [
  { role: 'developer', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is the capital of France?' },
];

describe('real request shapes', () => {
  it('OpenAI chat: model, stream, the output cap (the larger of max_completion_tokens and max_tokens), n, include_usage needed', () => {
    expect(parsed('openai.chat', { model: ' gpt-4o-2024-08-06 ', messages: chatMessages })).toEqual({
      api: 'openai.chat',
      model: 'gpt-4o-2024-08-06',
      stream: false,
      outputCap: undefined,
      n: 1,
      inputEstimateTokens: expect.any(Number),
      needsIncludeUsage: false,
    });
    expect(parsed('openai.chat', { model: 'GPT-4o', messages: chatMessages, stream: true, max_tokens: 100, max_completion_tokens: 50, n: 3 })).toMatchObject({
      model: 'GPT-4o',
      stream: true,
      // Both caps: the larger (an upstream may honour either).
      outputCap: 100,
      n: 3,
      needsIncludeUsage: true,
    });
    expect(parsed('openai.chat', { model: 'gpt-4o', messages: chatMessages, max_tokens: 100 }).outputCap).toBe(100);
    expect(parsed('openai.chat', { model: 'gpt-4o', messages: chatMessages, stream: true, stream_options: { include_usage: true } }).needsIncludeUsage).toBe(false);
    expect(parsed('openai.chat', { model: 'gpt-4o', messages: chatMessages, stream: true, stream_options: { include_usage: false } }).needsIncludeUsage).toBe(true);
    expect(parsed('openai.chat', { model: 'gpt-4o', messages: chatMessages, stream: false, stream_options: null, max_tokens: null, n: null })).toMatchObject({ stream: false, outputCap: undefined, n: 1, needsIncludeUsage: false });
  });

  it('OpenAI Responses: max_output_tokens, input as a string or items, instructions', () => {
    expect(parsed('openai.responses', { model: 'gpt-4.1', input: 'Tell me a three sentence bedtime story about a unicorn.', stream: true, max_output_tokens: 500 })).toEqual({
      api: 'openai.responses',
      model: 'gpt-4.1',
      stream: true,
      outputCap: 500,
      n: 1,
      inputEstimateTokens: Math.ceil('Tell me a three sentence bedtime story about a unicorn.'.length / 4),
      needsIncludeUsage: false,
    });
    const items = parsed('openai.responses', { model: 'o4-mini', instructions: 'x'.repeat(400), input: [{ role: 'user', content: [{ type: 'input_text', text: 'y'.repeat(400) }] }] });
    expect(items.inputEstimateTokens).toBeGreaterThanOrEqual(200);
    expect(items.inputEstimateTokens).toBeLessThan(220);
  });

  it('OpenAI Embeddings: never a stream nor a cap; token-id inputs count one token each', () => {
    expect(parsed('openai.embeddings', { model: 'text-embedding-3-small', input: 'The food was delicious and the waiter...', encoding_format: 'float' })).toEqual({
      api: 'openai.embeddings',
      model: 'text-embedding-3-small',
      stream: false,
      outputCap: undefined,
      n: 1,
      inputEstimateTokens: 10,
      needsIncludeUsage: false,
    });
    expect(parsed('openai.embeddings', { model: 'text-embedding-3-small', input: [[1, 2, 3, 4, 5], [6, 7, 8]] }).inputEstimateTokens).toBe(8);
    expect(parsed('openai.embeddings', { model: 'text-embedding-3-large', input: ['a'.repeat(40), 'b'.repeat(40)] }).inputEstimateTokens).toBe(20);
  });

  it('Anthropic Messages: max_tokens, system as text or blocks; no max_tokens is not refused here', () => {
    const request = parsed('anthropic.messages', {
      model: 'claude-sonnet-4-5-20250929',
      max_tokens: 1024,
      stream: true,
      system: [{ type: 'text', text: 's'.repeat(800), cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: 'Hello, Claude' }],
    });
    expect(request).toMatchObject({ api: 'anthropic.messages', model: 'claude-sonnet-4-5-20250929', stream: true, outputCap: 1024, n: 1, needsIncludeUsage: false });
    expect(request.inputEstimateTokens).toBeGreaterThanOrEqual(200);
    expect(request.inputEstimateTokens).toBeLessThan(215);
    expect(parsed('anthropic.messages', { model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'hi' }] }).outputCap).toBeUndefined();
  });

  it('token counts (free): the model read like the API they count for; no output, no stream, no charge', () => {
    // Anthropic's POST /v1/messages/count_tokens takes a Messages body without max_tokens.
    expect(parsed('anthropic.count-tokens', { model: 'claude-opus-4-1', system: 'Be brief.', messages: [{ role: 'user', content: 'Hello' }] })).toMatchObject({ api: 'anthropic.count-tokens', model: 'claude-opus-4-1', stream: false, outputCap: undefined, n: 1, free: true });
    // OpenAI's POST /v1/responses/input_tokens: a Responses body; `background` there bills nothing later.
    const counted = parsed('openai.input-tokens', { model: 'gpt-4o', input: 'Hello', background: true, max_output_tokens: 50 });
    expect(counted).toMatchObject({ model: 'gpt-4o', outputCap: undefined, free: true });
    expect(counted.deferred).toBeUndefined();
    // Gemini's :countTokens names the model in the path; the body may wrap a whole generateContent request.
    const gemini = parseAiRequestBody('gemini.count-tokens', bytes({ generateContentRequest: { model: 'models/gemini-2.5-pro', contents: [{ role: 'user', parts: [{ text: 'hi' }] }] } }), { pathModel: 'gemini-2.5-pro' });
    expect(gemini.ok && gemini.request).toMatchObject({ model: 'gemini-2.5-pro', modelInPath: true, free: true, stream: false });
    // The model is required: the team's rules check it.
    expect(problemOf('openai.input-tokens', { input: 'Hello' }).message).toBe('request body field "model" is missing');
    expect(parsed('anthropic.messages', { model: 'claude-haiku-4-5', max_tokens: 5, messages: [] }).free).toBeUndefined();
  });

  it('the input estimate grows with the text, counts tools, and counts images roughly instead of by their base64 size', () => {
    const small = parsed('openai.chat', { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).inputEstimateTokens;
    const large = parsed('openai.chat', { model: 'gpt-4o', messages: [{ role: 'user', content: 'word '.repeat(4000) }] }).inputEstimateTokens;
    expect(small).toBeGreaterThanOrEqual(1);
    expect(large).toBeGreaterThanOrEqual(5000);
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Get the current weather in a given location', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }];
    expect(parsed('openai.chat', { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], tools }).inputEstimateTokens).toBeGreaterThan(small + 10);
    const image = `data:image/png;base64,${'A'.repeat(2_000_000)}`;
    const withImage = parsed('openai.chat', { model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in this image?' }, { type: 'image_url', image_url: { url: image } }] }] });
    expect(withImage.inputEstimateTokens).toBeGreaterThan(500);
    expect(withImage.inputEstimateTokens).toBeLessThan(2000);
    const anthropicImage = parsed('anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: 'B'.repeat(1_000_000) } }] }] });
    expect(anthropicImage.inputEstimateTokens).toBeGreaterThanOrEqual(1000);
    expect(anthropicImage.inputEstimateTokens).toBeLessThan(1010);
  });

  it('accepts a UTF-8 byte-order mark and multi-byte text', () => {
    expect(parsed('openai.chat', `\uFEFF${JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Zürich 日本 👋' }] })}`).model).toBe('gpt-4o');
  });
});

describe('bad bodies, each with its message', () => {
  it.each([
    ['', 'not_json', 'request body is empty; expected a JSON object'],
    ['   ', 'not_json', 'request body is empty; expected a JSON object'],
    ['model=gpt-4o', 'not_json', /^request body is not valid JSON: .+/],
    ['{"model": "gpt-4o", "messages": [{"role": "user", "content": "hel', 'not_json', /^request body is not valid JSON: .*\(truncated\?\)$/],
    ['{"model": "gpt-4o", "messages": [', 'not_json', /^request body is not valid JSON: .*\(truncated\?\)$/],
    ['{"model": "gpt-4o",', 'not_json', /\(truncated\?\)$/],
    ['[{"model": "gpt-4o"}]', 'not_object', 'request body must be a JSON object (got array)'],
    ['"gpt-4o"', 'not_object', 'request body must be a JSON object (got string "gpt-4o")'],
    ['null', 'not_object', 'request body must be a JSON object (got null)'],
    ['{"messages": []}', 'model_missing', 'request body field "model" is missing'],
    ['{"model": null}', 'model_missing', 'request body field "model" is missing'],
    ['{"model": "  "}', 'model_missing', 'request body field "model" is empty'],
    ['{"model": 4}', 'model_not_string', 'request body field "model" must be a string (got 4)'],
    ['{"model": ["gpt-4o", "claude-opus-4-1"]}', 'model_not_string', 'request body field "model" must be a string (got array)'],
    ['{"model": {"id": "gpt-4o"}}', 'model_not_string', 'request body field "model" must be a string (got object)'],
    [`{"model": "${'m'.repeat(300)}"}`, 'bad_field', 'request body field "model" is too long (300 characters; at most 256)'],
    ['{"model": "gpt-4o", "stream": "yes"}', 'bad_field', 'request body field "stream" must be a boolean (got string "yes")'],
    ['{"model": "gpt-4o", "stream": 1}', 'bad_field', 'request body field "stream" must be a boolean (got 1)'],
    ['{"model": "gpt-4o", "max_tokens": -1}', 'bad_field', 'request body field "max_tokens" must be a positive integer (got -1)'],
    ['{"model": "gpt-4o", "max_tokens": 0}', 'bad_field', 'request body field "max_tokens" must be a positive integer (got 0)'],
    ['{"model": "gpt-4o", "max_completion_tokens": 1.5}', 'bad_field', 'request body field "max_completion_tokens" must be a positive integer (got 1.5)'],
    ['{"model": "gpt-4o", "max_tokens": "100"}', 'bad_field', 'request body field "max_tokens" must be a positive integer (got string "100")'],
    ['{"model": "gpt-4o", "n": 0}', 'bad_field', 'request body field "n" must be a positive integer (got 0)'],
    ['{"model": "gpt-4o", "stream": true, "stream_options": true}', 'bad_field', 'request body field "stream_options" must be an object (got boolean)'],
    ['{"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": "true"}}', 'bad_field', 'request body field "stream_options.include_usage" must be a boolean (got string "true")'],
  ] as const)('chat %s → %s', (body, code, message) => {
    const found = problemOf('openai.chat', body);
    expect(found.code).toBe(code);
    if (typeof message === 'string') expect(found.message).toBe(message);
    else expect(found.message).toMatch(message);
  });

  it('checks each API\u2019s own cap field', () => {
    expect(problemOf('openai.responses', { model: 'gpt-4.1', max_output_tokens: -5 }).message).toBe('request body field "max_output_tokens" must be a positive integer (got -5)');
    expect(problemOf('anthropic.messages', { model: 'claude-opus-4-1', max_tokens: 'lots' }).message).toBe('request body field "max_tokens" must be a positive integer (got string "lots")');
    expect(problemOf('anthropic.messages', { model: 'claude-opus-4-1', max_tokens: 10, stream: 'true' }).code).toBe('bad_field');
    // Fields of other APIs pass through untouched.
    expect(parsed('openai.responses', { model: 'gpt-4.1', max_tokens: 'ignored-here' }).outputCap).toBeUndefined();
  });

  it('does not refuse a truncated-looking body for a syntax error in the middle', () => {
    expect(problemOf('openai.chat', '{"model": "gpt-4o" "stream": true}').message).not.toMatch(/truncated/);
  });
});

describe('rewriting the forwarded body', () => {
  const rewrite = (api: AiApi, body: Record<string, unknown>, changes: Parameters<typeof rewriteAiRequestBody>[2]) => {
    const result = parseAiRequestBody(api, bytes(body));
    if (!result.ok) throw new Error(result.problem.message);
    return rewriteAiRequestBody(api, result.json, changes).toString('utf8');
  };

  it('turns include_usage on, keeping the other stream_options keys and the key order', () => {
    const body = { model: 'gpt-4o', messages: chatMessages, stream: true, stream_options: { include_obfuscation: false }, temperature: 0.2 };
    const out = rewrite('openai.chat', body, { includeUsage: true });
    expect(out).toBe(JSON.stringify({ model: 'gpt-4o', messages: chatMessages, stream: true, stream_options: { include_obfuscation: false, include_usage: true }, temperature: 0.2 }));
    expect(rewrite('openai.chat', { model: 'gpt-4o', stream: true, messages: [] }, { includeUsage: true })).toBe('{"model":"gpt-4o","stream":true,"messages":[],"stream_options":{"include_usage":true}}');
    expect(rewrite('anthropic.messages', { model: 'claude-haiku-4-5', stream: true }, { includeUsage: true })).toBe('{"model":"claude-haiku-4-5","stream":true}');
  });

  it('sets the output cap in each API\u2019s own field', () => {
    expect(JSON.parse(rewrite('openai.chat', { model: 'gpt-4o', max_completion_tokens: 4000 }, { outputCap: 256 }))).toEqual({ model: 'gpt-4o', max_completion_tokens: 256 });
    expect(JSON.parse(rewrite('openai.chat', { model: 'gpt-4o', max_tokens: 4000 }, { outputCap: 256 }))).toEqual({ model: 'gpt-4o', max_tokens: 256 });
    // No cap named: max_completion_tokens, the field reasoning models (o-series, gpt-5) accept.
    expect(JSON.parse(rewrite('openai.chat', { model: 'o4-mini' }, { outputCap: 256 }))).toEqual({ model: 'o4-mini', max_completion_tokens: 256 });
    expect(JSON.parse(rewrite('openai.chat', { model: 'gpt-4o', max_tokens: 9, max_completion_tokens: 9 }, { outputCap: 5 }))).toEqual({ model: 'gpt-4o', max_tokens: 5, max_completion_tokens: 5 });
    expect(JSON.parse(rewrite('openai.responses', { model: 'gpt-4.1', input: 'x' }, { outputCap: 300 }))).toEqual({ model: 'gpt-4.1', input: 'x', max_output_tokens: 300 });
    expect(JSON.parse(rewrite('anthropic.messages', { max_tokens: 8192, model: 'claude-opus-4-1' }, { outputCap: 1000 }))).toEqual({ max_tokens: 1000, model: 'claude-opus-4-1' });
    expect(JSON.parse(rewrite('openai.embeddings', { model: 'text-embedding-3-small', input: 'x' }, { outputCap: 1 }))).toEqual({ model: 'text-embedding-3-small', input: 'x' });
  });

  it('a model in the path and another in the body: both are the request\u2019s models (an upstream may read either); the same one named twice is one', () => {
    const read = (api: AiApi, pathModel: string, body: unknown) => parseAiRequestBody(api, bytes(body), { pathModel });
    const two = read('vertex.anthropic', 'claude-haiku-4-5@20251001', { model: 'claude-opus-4-1', max_tokens: 5, messages: [] });
    expect(two.ok && two.request).toMatchObject({ model: 'claude-haiku-4-5@20251001', models: ['claude-haiku-4-5@20251001', 'claude-opus-4-1'] });
    for (const [api, pathModel, bodyModel] of [['gemini.generate', 'gemini-2.5-flash', 'models/gemini-2.5-flash'], ['bedrock.converse', 'us.anthropic.claude-haiku-4-5-20251001-v1:0', 'claude-haiku-4-5-20251001'], ['vertex.anthropic', 'claude-haiku-4-5@20251001', 'Claude-Haiku-4-5-20251001']] as const) {
      const one = read(api, pathModel, { model: bodyModel, contents: [], messages: [] });
      expect(one.ok && one.request.models, `${api} ${bodyModel}`).toBeUndefined();
    }
    // An Azure deployment's body model names a deployment, not a model.
    const azure = read('azure.chat', 'gpt-4o', { model: 'prod-chat', messages: [] });
    expect(azure.ok && azure.request.models).toBeUndefined();
  });

  it('Gemini: reads generation_config in its proto spelling too (Google takes both), rewrites the spelling used, refuses both at once', () => {
    const pathModel = { pathModel: 'gemini-2.5-flash' };
    const read = (body: unknown) => parseAiRequestBody('gemini.generate', bytes(body), pathModel);
    const snake = read({ contents: [], generation_config: { max_output_tokens: 900, candidate_count: 3 } });
    expect(snake.ok && snake.request).toMatchObject({ outputCap: 900, n: 3 });
    const mixed = read({ contents: [], generationConfig: { candidate_count: 4 } });
    expect(mixed.ok && mixed.request).toMatchObject({ n: 4 });
    for (const both of [{ generationConfig: {}, generation_config: {} }, { generationConfig: { maxOutputTokens: 1, max_output_tokens: 9 } }, { generation_config: { candidateCount: 1, candidate_count: 8 } }]) {
      const result = read({ contents: [], ...both });
      expect(!result.ok && result.problem.message).toMatch(/twice, also as/);
    }
    expect(JSON.parse(rewrite('gemini.generate', { model: 'g', contents: [], generation_config: { max_output_tokens: 9000, candidate_count: 2 } }, { outputCap: 100 }))).toEqual({ model: 'g', contents: [], generation_config: { max_output_tokens: 100, candidate_count: 2 } });
    expect(JSON.parse(rewrite('gemini.generate', { model: 'g', contents: [], generation_config: { candidate_count: 2 } }, { outputCap: 100 }))).toEqual({ model: 'g', contents: [], generation_config: { candidate_count: 2, maxOutputTokens: 100 } });
  });

  it('replaces the model in place and leaves the parsed object untouched', () => {
    const result = parseAiRequestBody('anthropic.messages', bytes({ model: 'claude-opus-4-1', max_tokens: 10, messages: [{ role: 'user', content: 'Zürich 👋' }] }));
    if (!result.ok) throw new Error('parse failed');
    const out = rewriteAiRequestBody('anthropic.messages', result.json, { model: 'claude-sonnet-4-5', outputCap: 5 });
    expect(out.toString('utf8')).toBe('{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"Zürich 👋"}]}');
    expect(result.json.model).toBe('claude-opus-4-1');
    expect(result.json.max_tokens).toBe(10);
  });
});
