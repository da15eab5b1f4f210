import { describe, expect, it } from 'vitest';
import { createModelMatcher, modelPatternSpecificity } from '../../src/usage/model-pattern.js';

const matches = (patterns: string[], model: string) => createModelMatcher(patterns).matches(model);

describe('model families', () => {
  it.each([
    ['claude-sonnet', 'claude-sonnet'],
    ['claude-sonnet', 'claude-sonnet-4-5'],
    ['claude-sonnet', 'claude-sonnet-4-5-20250929'],
    ['claude-sonnet', 'claude-sonnet-4-20250514'],
    ['claude-sonnet-4-5', 'claude-sonnet-4-5-20250929'],
    ['claude-opus', 'claude-opus-4-1-20250805'],
    ['claude-haiku', 'claude-haiku-4-5'],
    ['claude-3-5-haiku', 'claude-3-5-haiku-latest'],
    ['claude-3-5-haiku', 'claude-3-5-haiku-20241022'],
    ['gpt-4o', 'gpt-4o'],
    ['gpt-4o', 'gpt-4o-2024-08-06'],
    ['gpt-4o-mini', 'gpt-4o-mini-2024-07-18'],
    ['gpt-4.1', 'gpt-4.1-2025-04-14'],
    ['o4-mini', 'o4-mini-2025-04-16'],
    ['o3', 'o3-2025-04-16'],
    ['gpt-5', 'gpt-5-2025-08-07'],
    ['GPT-4o', 'gpt-4o-2024-08-06'],
    ['gpt-4o', 'GPT-4O-2024-08-06'],
    ['text-embedding-3-small', 'text-embedding-3-small'],
  ])('%s matches %s', (pattern, model) => {
    expect(matches([pattern], model)).toBe(true);
    expect(modelPatternSpecificity(pattern, model)).toBeGreaterThan(0);
  });

  it.each([
    ['gpt-4o', 'gpt-4o-mini'],
    ['gpt-4o', 'gpt-4o-mini-2024-07-18'],
    ['gpt-4o', 'chatgpt-4o-latest'],
    ['gpt-4o', 'gpt-4'],
    ['gpt-4', 'gpt-4o'],
    ['gpt-4.1', 'gpt-4.1-mini'],
    ['gpt-4.1', 'gpt-4.1-nano-2025-04-14'],
    ['gpt-5', 'gpt-5-mini'],
    ['gpt-5', 'gpt-5.1'],
    ['o3', 'o3-mini'],
    ['o3', 'o3-pro-2025-06-10'],
    ['o4-mini', 'o4-mini-deep-research'],
    ['claude-sonnet', 'claude-sonnetx'],
    ['claude-sonnet', 'claude-3-5-sonnet-20241022'],
    ['claude-sonnet-4', 'claude-sonnet-4-extra'],
    ['claude-opus', 'claude-opus-'],
    ['claude-opus-4', 'claude-opus'],
    ['text-embedding-3-small', 'text-embedding-3-large'],
  ])('%s does not match %s', (pattern, model) => {
    expect(matches([pattern], model)).toBe(false);
    expect(modelPatternSpecificity(pattern, model)).toBeUndefined();
  });
});

describe('globs and everything', () => {
  it('"*" matches every model and says so', () => {
    const all = createModelMatcher(['gpt-4o', '*']);
    expect(all.matchesAll).toBe(true);
    expect(all.matches('anything-at-all')).toBe(true);
    expect(createModelMatcher(['gpt-4o']).matchesAll).toBe(false);
  });

  it('a glob matches any run of characters, anchored at both ends, case-insensitively', () => {
    expect(matches(['claude-*-4-5'], 'claude-sonnet-4-5')).toBe(true);
    expect(matches(['claude-*-4-5'], 'claude-sonnet-4-5-20250929')).toBe(false);
    expect(matches(['gpt-4o*'], 'GPT-4o-mini')).toBe(true);
    expect(matches(['*-mini'], 'o4-mini')).toBe(true);
    expect(matches(['*-mini'], 'o4-mini-2025-04-16')).toBe(false);
    expect(matches(['gpt-4.1*'], 'gpt-441')).toBe(false);
  });

  it('a list matches when any pattern matches; an empty list matches nothing', () => {
    const list = createModelMatcher(['claude-haiku', 'gpt-4o']);
    expect(list.matches('gpt-4o-2024-11-20')).toBe(true);
    expect(list.matches('claude-haiku-4-5-20251001')).toBe(true);
    expect(list.matches('claude-sonnet-4-5')).toBe(false);
    expect(createModelMatcher([]).matches('gpt-4o')).toBe(false);
    expect(createModelMatcher(['']).matches('')).toBe(false);
  });
});

describe('specificity', () => {
  const mostSpecific = (patterns: string[], model: string) =>
    patterns
      .map((pattern) => ({ pattern, score: modelPatternSpecificity(pattern, model) }))
      .filter((entry) => entry.score !== undefined)
      .sort((a, b) => b.score! - a.score!)[0]?.pattern;

  it('ranks the exact id over a longer family over a shorter family over globs over "*"', () => {
    const patterns = ['*', 'claude-*', 'claude-sonnet-*', 'claude-sonnet', 'claude-sonnet-4-5', 'claude-sonnet-4-5-20250929'];
    expect(mostSpecific(patterns, 'claude-sonnet-4-5-20250929')).toBe('claude-sonnet-4-5-20250929');
    expect(mostSpecific(patterns, 'claude-sonnet-4-5-20260101')).toBe('claude-sonnet-4-5');
    expect(mostSpecific(patterns, 'claude-sonnet-4-20250514')).toBe('claude-sonnet');
    expect(mostSpecific(patterns, 'claude-sonnet-exp')).toBe('claude-sonnet-*');
    expect(mostSpecific(patterns, 'claude-opus-4-1')).toBe('claude-*');
    expect(mostSpecific(patterns, 'gpt-4o')).toBe('*');
  });

  it('an exact id outranks a longer family that only matches by version', () => {
    expect(modelPatternSpecificity('gpt-4o', 'gpt-4o')!).toBeGreaterThan(modelPatternSpecificity('claude-sonnet-4-5', 'claude-sonnet-4-5-20250929')!);
  });

  it('never lets gpt-4o price gpt-4o-mini', () => {
    expect(mostSpecific(['gpt-4o', 'gpt-4o-mini'], 'gpt-4o-mini-2024-07-18')).toBe('gpt-4o-mini');
    expect(mostSpecific(['gpt-4o', 'gpt-4o-mini'], 'gpt-4o-2024-08-06')).toBe('gpt-4o');
  });
});
