import { describe, expect, it } from 'vitest';
import type { AiApi } from '../../src/usage/ai-api.js';
import { createUsageMeter, type UsageReport } from '../../src/usage/response-usage.js';
import { anthropicMessagesJson, geminiJson, geminiJsonArray, openAiChatJson, openAiResponsesJson, tokenUsage } from '../support/llm-wire.js';

/**
 * The JSON meter reads a captured `usage`, `model` or `error` in place when it lies in one chunk and
 * joins the pieces when it spans chunks: every cut of each body gives the report of the body in one piece.
 */
const usage = tokenUsage({ input: 1200, cachedInput: 200, output: 345, reasoning: 45 });
const bodies: [string, AiApi, string][] = [
  ['OpenAI chat, text with escapes and non-ASCII', 'openai.chat', openAiChatJson({ model: 'gpt-4o-2024-08-06', usage, text: 'Zürich \\"quoted\\" — 東京 \u{1F600} done' })],
  ['Anthropic messages', 'anthropic.messages', anthropicMessagesJson({ model: 'claude-opus-4-1', usage: tokenUsage({ input: 50, output: 7 }), text: 'Hello there' })],
  ['Responses API', 'openai.responses', openAiResponsesJson({ model: 'gpt-5', usage, text: 'a reply' })],
  ['Gemini', 'gemini.generate', geminiJson({ model: 'gemini-2.5-pro', usage: tokenUsage({ input: 10, output: 20 }), text: 'short' })],
  ['Gemini array (streamGenerateContent without alt=sse)', 'gemini.stream', geminiJsonArray({ model: 'gemini-2.5-pro', usage: tokenUsage({ input: 10, output: 20 }), deltas: ['one ', 'two'] })],
  ['an error answer', 'openai.chat', JSON.stringify({ error: { message: 'Rate limit reached for gpt-4o', type: 'requests', code: 'rate_limit_exceeded' } })],
  ['usage twice (the last counts, as JSON.parse reads it)', 'openai.chat', '{"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"choices":[],"usage":{"prompt_tokens":90,"completion_tokens":10,"total_tokens":100}}'],
];

function meter(api: AiApi, pieces: readonly Buffer[]): UsageReport {
  const usageMeter = createUsageMeter({ api, contentType: 'application/json' });
  for (const piece of pieces) usageMeter.push(piece);
  return usageMeter.end();
}

describe('the JSON meter, cut anywhere', () => {
  for (const [name, api, text] of bodies) {
    it(`${name}: every two-piece cut and byte-by-byte give the whole body's report`, () => {
      const body = Buffer.from(text);
      const whole = meter(api, [body]);
      expect(whole.usage !== undefined || whole.providerError !== undefined, name).toBe(true);
      for (let cut = 0; cut <= body.length; cut++) expect(meter(api, [body.subarray(0, cut), body.subarray(cut)]), `cut at ${cut}`).toEqual(whole);
      expect(meter(api, [...body].map((byte) => Buffer.from([byte])))).toEqual(whole);
    });
  }

  it('reads the last of a duplicated usage, as JSON.parse does', () => {
    expect(meter('openai.chat', [Buffer.from(bodies.at(-1)![2])]).usage).toMatchObject({ input: 90, output: 10 });
  });
});
