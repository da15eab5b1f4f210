import { describe, expect, it } from 'vitest';
import { createAiPathMatcher, DEFAULT_AI_PATHS, PROVIDER_OF } from '../../src/usage/ai-api.js';

describe('AI path matcher', () => {
  const matcher = createAiPathMatcher(DEFAULT_AI_PATHS);

  it.each([
    ['/v1/chat/completions', 'openai.chat'],
    ['/v1/responses', 'openai.responses'],
    ['/v1/embeddings', 'openai.embeddings'],
    ['/v1/messages', 'anthropic.messages'],
    ['/openai/v1/chat/completions', 'openai.chat'],
    ['/anthropic/v1/messages?beta=true', 'anthropic.messages'],
    ['/v1/chat/completions?api-version=2024-10-21', 'openai.chat'],
    ['/v1/chat/completions/', 'openai.chat'],
    ['/v1/responses#frag', 'openai.responses'],
    ['/v1/messages/count_tokens?beta=true', 'anthropic.count-tokens'],
    ['/v1/responses/input_tokens', 'openai.input-tokens'],
    ['/v1beta/models/gemini-2.5-pro:countTokens', 'gemini.count-tokens'],
    ['/v1/projects/p/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict', 'vertex.anthropic-count-tokens'],
    ['/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict', 'vertex.anthropic'],
    ['/model/anthropic.claude-haiku-4-5-20251001-v1:0/count-tokens', 'bedrock.count-tokens'],
  ] as const)('%s is %s', (path, api) => {
    expect(matcher.match(path)).toBe(api);
  });

  it.each([
    '/v1/chat/completionsX',
    '/xv1/chat/completions',
    '/v1/chat/completions/extra',
    '/v1/messages/count_tokens/x',
    '/v1/messages/batches/msgbatch_01/cancel',
    '/v1/responses/resp_123',
    '/v1/models',
    '/V1/CHAT/COMPLETIONS',
    '/',
    '',
    undefined,
  ])('%s is not an AI path', (path) => {
    expect(matcher.match(path)).toBeUndefined();
  });

  it('uses the configured paths only, and the longest configured path wins', () => {
    const custom = createAiPathMatcher({ 'openai.chat': ['/chat', '/deployments/gpt/chat/completions'], 'anthropic.messages': ['messages'] });
    expect(custom.match('/team-a/chat')).toBe('openai.chat');
    expect(custom.match('/openai/deployments/gpt/chat/completions')).toBe('openai.chat');
    expect(custom.match('/v1/messages')).toBe('anthropic.messages');
    expect(custom.match('/v1/chat/completions')).toBeUndefined();
    expect(custom.match('/v1/embeddings')).toBeUndefined();
    const overlapping = createAiPathMatcher({ 'openai.responses': ['/responses'], 'openai.chat': ['/chat/responses'] });
    expect(overlapping.match('/v1/chat/responses')).toBe('openai.chat');
    expect(overlapping.match('/v1/responses')).toBe('openai.responses');
  });

  it('knows the provider of each API', () => {
    expect(PROVIDER_OF['openai.embeddings']).toBe('openai');
    expect(PROVIDER_OF['anthropic.messages']).toBe('anthropic');
  });
});

describe('AI paths with repeated slashes', () => {
  it('are the same AI path (a header decision must never skip the body model)', async () => {
    const { createAiPathMatcher, DEFAULT_AI_PATHS } = await import('../../src/usage/ai-api.js');
    const matcher = createAiPathMatcher(DEFAULT_AI_PATHS);
    expect(matcher.match('/v1//chat/completions')).toBe('openai.chat');
    expect(matcher.match('//openai//v1/messages//')).toBe('anthropic.messages');
  });
});
