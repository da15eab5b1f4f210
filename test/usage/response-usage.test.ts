import { describe, expect, it } from 'vitest';
import { createUsageMeter } from '../../src/usage/response-usage.js';
import {
  anthropicErrorJson,
  anthropicMessagesJson,
  anthropicMessagesSse,
  anthropicSseError,
  DEFAULT_TEXT,
  hugeEmbeddingsJson,
  openAiChatJson,
  openAiChatSse,
  openAiEmbeddingsJson,
  openAiErrorJson,
  openAiResponsesJson,
  openAiResponsesSse,
  openAiResponsesSseError,
  splitAt,
  tokenUsage,
} from '../support/llm-wire.js';
import { estimateOf, expectSameReportWhateverTheSplits, meter } from './metering.js';

const SSE = 'text/event-stream; charset=utf-8';
const JSON_TYPE = 'application/json';

describe('OpenAI Chat Completions', () => {
  const usage = tokenUsage({ input: 2006, cachedInput: 1920, output: 300, reasoning: 192 });

  it('JSON: the usage object, cached and reasoning tokens included', () => {
    const body = openAiChatJson({ model: 'gpt-4o-2024-08-06', usage });
    expectSameReportWhateverTheSplits('openai.chat', JSON_TYPE, body, {
      usage,
      modelServed: 'gpt-4o-2024-08-06',
      estimatedOutputTokens: estimateOf(DEFAULT_TEXT),
      complete: true,
      providerError: undefined,
    });
  });

  it('SSE with include_usage: the final usage chunk', () => {
    const body = openAiChatSse({ model: 'gpt-4o-mini-2024-07-18', usage, includeUsage: true });
    expectSameReportWhateverTheSplits('openai.chat', SSE, body, {
      usage,
      modelServed: 'gpt-4o-mini-2024-07-18',
      estimatedOutputTokens: estimateOf(DEFAULT_TEXT),
      complete: true,
      providerError: undefined,
    });
  });

  it('SSE without include_usage: no usage, an estimate from the streamed text, not complete', () => {
    const body = openAiChatSse({ model: 'gpt-4o', usage, includeUsage: false });
    const report = meter('openai.chat', SSE, [Buffer.from(body)]);
    expect(report).toEqual({ usage: undefined, modelServed: 'gpt-4o', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: false, providerError: undefined });
    expect(report.estimatedOutputTokens).toBeGreaterThan(0);
  });

  it('a stream cut short: the estimate so far, from snapshot() as well as end()', () => {
    const body = Buffer.from(openAiChatSse({ model: 'gpt-4o', usage, includeUsage: true, deltas: ['Hello there, ', 'general ', 'Kenobi'] }));
    const usageMeter = createUsageMeter({ api: 'openai.chat', contentType: SSE });
    usageMeter.push(body.subarray(0, body.indexOf('Kenobi') - 20));
    expect(usageMeter.snapshot()).toMatchObject({ usage: undefined, estimatedOutputTokens: estimateOf('Hello there, general '), complete: false });
    expect(usageMeter.end()).toMatchObject({ usage: undefined, complete: false });
  });

  it('n > 1 choices all count towards the estimate, and tool-call arguments too', () => {
    const chunk = (delta: unknown) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [delta] })}\n\n`;
    const body =
      chunk({ index: 0, delta: { content: 'aaaa' } }) +
      chunk({ index: 1, delta: { content: 'bbbb' } }) +
      chunk({ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":"Paris"}' } }] } }) +
      'data: [DONE]\n\n';
    expect(meter('openai.chat', SSE, [Buffer.from(body)]).estimatedOutputTokens).toBe(Math.ceil((4 + 4 + 16) / 4));
  });

  it('an error in the stream is reported', () => {
    const body = `data: ${JSON.stringify({ error: { message: 'The server had an error', type: 'server_error' } })}\n\n`;
    expect(meter('openai.chat', SSE, [Buffer.from(body)])).toMatchObject({ usage: undefined, complete: false, providerError: 'server_error: The server had an error' });
  });

  it('an error JSON body (4xx/5xx) is reported, with no usage', () => {
    expect(meter('openai.chat', JSON_TYPE, [Buffer.from(openAiErrorJson(429, 'Rate limit reached for gpt-4o'))])).toEqual({
      usage: undefined,
      modelServed: undefined,
      estimatedOutputTokens: 0,
      complete: false,
      providerError: 'rate_limit_exceeded: Rate limit reached for gpt-4o',
    });
  });

  it('a JSON body cut short keeps the estimate, not the completeness', () => {
    const body = Buffer.from(openAiChatJson({ model: 'gpt-4o', usage, text: 'x'.repeat(400) }));
    const cut = body.indexOf('"usage"');
    expect(meter('openai.chat', JSON_TYPE, [body.subarray(0, cut)])).toEqual({ usage: undefined, modelServed: 'gpt-4o', estimatedOutputTokens: 100, complete: false, providerError: undefined });
  });

  it('counts escaped and non-ASCII text in JSON as the decoded string length, whatever the splits', () => {
    // Four lengths in a row, so that one character too many or too few changes some estimate.
    for (const text of ['line one\nline "two" \u00e9 日本 👋 \\ end', 'line one\nline "two" \u00e9 日本 👋 \\ end!', 'line one\nline "two" \u00e9 日本 👋 \\ end!!', 'line one\nline "two" \u00e9 日本 👋 \\ end!!!']) {
      const body = JSON.parse(openAiChatJson({ model: 'gpt-4o', usage, text })) as Record<string, unknown>;
      const withoutUsage = JSON.stringify({ ...body, usage: undefined });
      const unicodeEscaped = withoutUsage.replace('é', '\\u00e9').replace('👋', '\\ud83d\\udc4b');
      expect(unicodeEscaped).not.toBe(withoutUsage);
      for (const variant of [withoutUsage, unicodeEscaped]) {
        const bytes = Buffer.from(variant);
        expect(meter('openai.chat', JSON_TYPE, [bytes]).estimatedOutputTokens).toBe(estimateOf(text));
        for (let offset = 1; offset < bytes.length; offset += 1) {
          const estimate = meter('openai.chat', JSON_TYPE, splitAt(bytes, [offset, offset + 3])).estimatedOutputTokens;
          if (estimate !== estimateOf(text)) expect({ offset, estimate }).toEqual({ offset, estimate: estimateOf(text) });
        }
      }
    }
  });
});

describe('OpenAI Responses', () => {
  const usage = tokenUsage({ input: 328, cachedInput: 128, output: 52, reasoning: 24 });

  it('SSE: response.completed carries the usage', () => {
    expectSameReportWhateverTheSplits('openai.responses', SSE, openAiResponsesSse({ model: 'gpt-4.1-2025-04-14', usage }), {
      usage,
      modelServed: 'gpt-4.1-2025-04-14',
      estimatedOutputTokens: estimateOf(DEFAULT_TEXT),
      complete: true,
      providerError: undefined,
    });
  });

  it('SSE: a long output (its terminal event over 1 MiB, as it repeats the text) still gives the usage', () => {
    const deltas = Array.from({ length: 3000 }, (_, index) => `${index} ${'lorem ipsum '.repeat(60)}`);
    const body = Buffer.from(openAiResponsesSse({ model: 'gpt-4.1', usage, deltas }));
    const terminal = body.subarray(body.lastIndexOf('event: response.completed'));
    expect(terminal.length).toBeGreaterThan(2 * 1024 * 1024);
    const usageMeter = createUsageMeter({ api: 'openai.responses', contentType: SSE });
    for (const chunk of splitAt(body, Array.from({ length: Math.ceil(body.length / 16_384) }, (_, index) => index * 16_384))) usageMeter.push(chunk);
    expect(usageMeter.end()).toMatchObject({ usage, complete: true, estimatedOutputTokens: estimateOf(deltas.join('')) });
  });

  it('SSE: response.incomplete still carries the final usage', () => {
    expect(meter('openai.responses', SSE, [Buffer.from(openAiResponsesSse({ model: 'o4-mini', usage, outcome: 'incomplete' }))])).toMatchObject({ usage, complete: true, providerError: undefined });
  });

  it('SSE: response.failed reports the error, and its usage', () => {
    expect(meter('openai.responses', SSE, [Buffer.from(openAiResponsesSse({ model: 'o3', usage, outcome: 'failed' }))])).toMatchObject({
      usage,
      complete: true,
      providerError: 'server_error: The model failed to generate a response.',
    });
  });

  it('SSE: an error event, no terminal event: estimate only', () => {
    const body = openAiResponsesSse({ model: 'gpt-5', usage, truncateAfterDeltas: true }) + openAiResponsesSseError('boom');
    expect(meter('openai.responses', SSE, [Buffer.from(body)])).toEqual({ usage: undefined, modelServed: 'gpt-5', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: false, providerError: 'server_error: boom' });
  });

  it('JSON: the response object usage', () => {
    expectSameReportWhateverTheSplits('openai.responses', JSON_TYPE, openAiResponsesJson({ model: 'gpt-5-2025-08-07', usage }), {
      usage,
      modelServed: 'gpt-5-2025-08-07',
      estimatedOutputTokens: estimateOf(DEFAULT_TEXT),
      complete: true,
      providerError: undefined,
    });
  });
});

describe('OpenAI Embeddings', () => {
  it('JSON: prompt tokens only', () => {
    expectSameReportWhateverTheSplits('openai.embeddings', JSON_TYPE, openAiEmbeddingsJson({ model: 'text-embedding-3-small', inputTokens: 8, vectors: 2, dimensions: 4 }), {
      usage: tokenUsage({ input: 8, output: 0 }),
      modelServed: 'text-embedding-3-small',
      estimatedOutputTokens: 0,
      complete: true,
      providerError: undefined,
    });
  });

  it('a 20 MB body: usage found, memory bounded by design', () => {
    const usageMeter = createUsageMeter({ api: 'openai.embeddings', contentType: JSON_TYPE });
    let bytes = 0;
    let maxRetained = 0;
    for (const chunk of hugeEmbeddingsJson({ model: 'text-embedding-3-large', inputTokens: 123_456, targetBytes: 20 * 1024 * 1024, dimensions: 3072 })) {
      usageMeter.push(chunk);
      bytes += chunk.length;
      maxRetained = Math.max(maxRetained, usageMeter.retainedBytes);
    }
    expect(bytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(maxRetained).toBeLessThan(1024);
    expect(usageMeter.end()).toEqual({ usage: tokenUsage({ input: 123_456, output: 0 }), modelServed: 'text-embedding-3-large', estimatedOutputTokens: 0, complete: true, providerError: undefined });
  });
});

describe('Anthropic Messages', () => {
  const usage = tokenUsage({ input: 2095, cachedInput: 1800, cacheWrite: 248, output: 503 });

  it('JSON: input = input_tokens + cache reads + cache writes', () => {
    const body = anthropicMessagesJson({ model: 'claude-sonnet-4-5-20250929', usage });
    expect(JSON.parse(body).usage).toMatchObject({ input_tokens: 47, cache_read_input_tokens: 1800, cache_creation_input_tokens: 248 });
    expectSameReportWhateverTheSplits('anthropic.messages', JSON_TYPE, body, {
      usage,
      modelServed: 'claude-sonnet-4-5-20250929',
      estimatedOutputTokens: estimateOf(DEFAULT_TEXT),
      complete: true,
      providerError: undefined,
    });
  });

  it('SSE: message_start input plus the final message_delta output', () => {
    expectSameReportWhateverTheSplits('anthropic.messages', SSE, anthropicMessagesSse({ model: 'claude-haiku-4-5-20251001', usage }), {
      usage,
      modelServed: 'claude-haiku-4-5-20251001',
      estimatedOutputTokens: estimateOf(DEFAULT_TEXT),
      complete: true,
      providerError: undefined,
    });
  });

  it('SSE: message_delta usage is cumulative: two deltas give the last value, not the sum', () => {
    const body = anthropicMessagesSse({ model: 'claude-opus-4-1-20250805', usage, twoMessageDeltas: true, deltaCarriesInput: true });
    expect(body.match(/event: message_delta/g)).toHaveLength(2);
    expect(meter('anthropic.messages', SSE, [Buffer.from(body)]).usage).toEqual(usage);
  });

  it('SSE: a message_delta that revises the input counts wins over message_start', () => {
    const revised = tokenUsage({ input: 3000, cachedInput: 1800, cacheWrite: 248, output: 503 });
    const body = anthropicMessagesSse({ model: 'claude-sonnet-4-5', usage }).replace(
      /"usage":\{"output_tokens":503\}/,
      `"usage":{"input_tokens":${3000 - 1800 - 248},"output_tokens":503}`,
    );
    expect(body).toContain('"input_tokens":952');
    expect(meter('anthropic.messages', SSE, [Buffer.from(body)]).usage).toEqual(revised);
  });

  it('SSE: thinking is estimated with the text, and not reported as separate reasoning', () => {
    const thinking = 'Let me work through this carefully before answering.';
    const report = meter('anthropic.messages', SSE, [Buffer.from(anthropicMessagesSse({ model: 'claude-sonnet-4-5', usage, thinking }))]);
    expect(report.usage?.reasoning).toBe(0);
    expect(report.estimatedOutputTokens).toBe(Math.ceil((thinking.length + DEFAULT_TEXT.length) / 4));
  });

  it('SSE cut before message_delta: message_start counts, estimate, not complete', () => {
    const report = meter('anthropic.messages', SSE, [Buffer.from(anthropicMessagesSse({ model: 'claude-sonnet-4-5', usage, truncateAfterDeltas: true }))]);
    expect(report).toEqual({ usage: { ...usage, output: 1 }, modelServed: 'claude-sonnet-4-5', estimatedOutputTokens: estimateOf(DEFAULT_TEXT), complete: false, providerError: undefined });
  });

  it('SSE: an error event (overloaded) is reported', () => {
    const body = anthropicMessagesSse({ model: 'claude-sonnet-4-5', usage, truncateAfterDeltas: true }) + anthropicSseError('Overloaded');
    expect(meter('anthropic.messages', SSE, [Buffer.from(body)])).toMatchObject({ complete: false, providerError: 'overloaded_error: Overloaded' });
  });

  it('an error JSON body is reported', () => {
    expect(meter('anthropic.messages', 'application/json', [Buffer.from(anthropicErrorJson(529, 'Overloaded'))])).toMatchObject({ usage: undefined, complete: false, providerError: 'overloaded_error: Overloaded' });
  });
});

describe('content types and bounds', () => {
  const usage = tokenUsage({ input: 10, output: 5 });

  it('sniffs a body without a content type: JSON on "{", SSE on a field line', () => {
    expect(meter('openai.chat', undefined, [Buffer.from('  '), Buffer.from(openAiChatJson({ model: 'gpt-4o', usage }))]).usage).toEqual(usage);
    expect(meter('openai.chat', undefined, [Buffer.from(openAiChatSse({ model: 'gpt-4o', usage, includeUsage: true }))]).usage).toEqual(usage);
    expect(meter('openai.chat', '', [Buffer.from(openAiChatJson({ model: 'gpt-4o', usage }))]).usage).toEqual(usage);
  });

  it('reads +json media types and ignores other bodies', () => {
    expect(meter('anthropic.messages', 'application/vnd.anthropic+json; charset=utf-8', [Buffer.from(anthropicMessagesJson({ model: 'claude-haiku-4-5', usage }))]).usage).toEqual(usage);
    expect(meter('openai.chat', 'text/html', [Buffer.from(openAiChatJson({ model: 'gpt-4o', usage }))])).toEqual({ usage: undefined, modelServed: undefined, estimatedOutputTokens: 0, complete: false, providerError: undefined });
  });

  it('does not capture a usage value larger than maxJsonBytes', () => {
    const padded = openAiChatJson({ model: 'gpt-4o', usage }).replace('"usage":{', `"usage":{"padding":"${'p'.repeat(2000)}",`);
    const usageMeter = createUsageMeter({ api: 'openai.chat', contentType: JSON_TYPE, maxJsonBytes: 1024 });
    for (const chunk of splitAt(Buffer.from(padded), Array.from({ length: 40 }, (_, index) => index * 64))) {
      usageMeter.push(chunk);
      expect(usageMeter.retainedBytes).toBeLessThanOrEqual(1024 + 10);
    }
    expect(usageMeter.end()).toMatchObject({ usage: undefined, modelServed: 'gpt-4o', complete: false });
  });

  it('keys named like ours below the top level are not taken for the top-level ones', () => {
    const body = JSON.stringify({ id: 'x', nested: { model: 'decoy', usage: { prompt_tokens: 999 } }, model: 'gpt-4o', usage: { prompt_tokens: 10, completion_tokens: 5 } });
    expect(meter('openai.chat', JSON_TYPE, [Buffer.from(body)])).toMatchObject({ usage, modelServed: 'gpt-4o', complete: true });
  });

  it('drops an SSE event over maxEventBytes and keeps counting the rest', () => {
    const body = openAiChatSse({ model: 'gpt-4o', usage, includeUsage: true, deltas: ['x'.repeat(5000), 'short'] });
    const report = meter('openai.chat', SSE, [Buffer.from(body)], { maxEventBytes: 2048 });
    expect(report).toMatchObject({ usage, complete: true, estimatedOutputTokens: estimateOf('short') });
  });
});
