import { describe, expect, it } from 'vitest';
import { GenopsError } from '../../src/errors/genops-error.js';
import { DEFAULT_PRICE_ENTRIES, DEFAULT_PRICES_VERSION } from '../../src/usage/default-prices.js';
import { costOf, createPriceTable, DEFAULT_PRICE_TABLE, formatPicoUsd, picoToUsdNumber, type PriceEntry } from '../../src/usage/pricing.js';
import { tokenUsage } from '../support/llm-wire.js';

const table = (entries: PriceEntry[]) => createPriceTable(entries, 'test');

describe('exact arithmetic', () => {
  it('converts USD per million tokens to integer pico-USD per token', () => {
    const price = table([{ model: 'm', price: { input: '2.50', cachedInput: 1.25, cacheWrite: '3.75', output: '0.000001' } }]).priceOf('m')!;
    expect(price).toMatchObject({ pattern: 'm', inputPico: 2_500_000n, cachedInputPico: 1_250_000n, cacheWritePico: 3_750_000n, cacheWrite1hPico: 3_750_000n, outputPico: 1n, contextWindow: undefined, longContext: undefined });
    const defaults = table([{ model: 'm', price: { input: '0.8', output: 4 } }]).priceOf('m')!;
    expect(defaults.cachedInputPico).toBe(800_000n);
    expect(defaults.cacheWritePico).toBe(800_000n);
  });

  it('bills uncached input, cached input, cache writes and output at their own prices', () => {
    const price = table([{ model: 'claude-sonnet-4-5', price: { input: '3', cacheWrite: '3.75', cachedInput: '0.30', output: '15' } }]).priceOf('claude-sonnet-4-5')!;
    // 47 uncached × $3 + 1800 cached × $0.30 + 248 written × $3.75 + 503 output × $15, per million.
    const cost = costOf(tokenUsage({ input: 2095, cachedInput: 1800, cacheWrite: 248, output: 503 }), price);
    expect(cost.pico).toBe(47n * 3_000_000n + 1800n * 300_000n + 248n * 3_750_000n + 503n * 15_000_000n);
    expect(cost.usd).toBe('0.009156'); // (141 + 540 + 930 + 7545) µUSD
    // Reasoning is inside output: it does not add to the cost.
    expect(costOf(tokenUsage({ input: 10, output: 100, reasoning: 90 }), price)).toEqual(costOf(tokenUsage({ input: 10, output: 100 }), price));
    expect(costOf(tokenUsage({ input: 0, output: 0 }), price)).toEqual({ pico: 0n, usd: '0' });
  });

  it('adds a million small costs with no drift, where floats drift', () => {
    const price = table([{ model: 'gpt-4o-mini', price: { input: '0.15', cachedInput: '0.075', output: '0.60' } }]).priceOf('gpt-4o-mini')!;
    const usage = tokenUsage({ input: 7, cachedInput: 3, output: 11 });
    const one = costOf(usage, price);
    expect(one.usd).toBe('0.000007425'); // 4 × 0.15e-6 + 3 × 0.075e-6 + 11 × 0.60e-6
    let total = 0n;
    let floatTotal = 0;
    for (let index = 0; index < 1_000_000; index += 1) {
      total += costOf(usage, price).pico;
      floatTotal += Number(one.usd);
    }
    expect(formatPicoUsd(total)).toBe('7.425');
    expect(picoToUsdNumber(total)).toBe(7.425);
    expect(floatTotal).not.toBe(7.425); // the drift the integers avoid
  });

  it('formats pico-USD as an exact, trimmed decimal', () => {
    expect(formatPicoUsd(0n)).toBe('0');
    expect(formatPicoUsd(1n)).toBe('0.000000000001');
    expect(formatPicoUsd(123_400_000n)).toBe('0.0001234');
    expect(formatPicoUsd(12_500_000_000_000n)).toBe('12.5');
    expect(formatPicoUsd(3_000_000_000_000n)).toBe('3');
    expect(formatPicoUsd(-1_500_000_000_000n)).toBe('-1.5');
    expect(formatPicoUsd(123_456_789_012_345_678_901n)).toBe('123456789.012345678901');
    expect(picoToUsdNumber(123_400_000n)).toBe(0.0001234);
  });
});

describe('most specific pattern wins', () => {
  const prices = table([
    { model: '*', price: { input: '100', output: '100' } },
    { model: 'claude-*', price: { input: '50', output: '50' } },
    { model: 'claude-sonnet-*', price: { input: '40', output: '40' } },
    { model: 'claude-sonnet', price: { input: '2', output: '10' } },
    { model: 'claude-sonnet-4-5', price: { input: '3', output: '15' } },
    { model: 'claude-sonnet-4-5-20250929', price: { input: '3.5', output: '15' } },
    { model: 'gpt-4o', price: { input: '2.50', output: '10' } },
    { model: 'gpt-4o-mini', price: { input: '0.15', output: '0.60' } },
  ]);
  const patternOf = (model: string) => prices.priceOf(model)?.pattern;

  it.each([
    ['claude-sonnet-4-5-20250929', 'claude-sonnet-4-5-20250929'],
    ['claude-sonnet-4-5-20260101', 'claude-sonnet-4-5'],
    ['claude-sonnet-4-5', 'claude-sonnet-4-5'],
    ['Claude-Sonnet-4-5', 'claude-sonnet-4-5'],
    ['claude-sonnet-5-5', 'claude-sonnet'],
    ['claude-sonnet-exp', 'claude-sonnet-*'],
    ['claude-opus-4-1', 'claude-*'],
    ['gpt-4o-2024-08-06', 'gpt-4o'],
    ['gpt-4o-mini', 'gpt-4o-mini'],
    ['gpt-4o-mini-2024-07-18', 'gpt-4o-mini'],
    ['llama-3', '*'],
  ])('%s is priced by %s', (model, pattern) => {
    expect(patternOf(model)).toBe(pattern);
  });

  it('prices nothing for a model no pattern matches', () => {
    const noFallback = table([{ model: 'gpt-4o', price: { input: '2.50', output: '10' } }]);
    expect(noFallback.priceOf('gpt-4o-mini')).toBeUndefined();
    expect(noFallback.priceOf('mistral-large')).toBeUndefined();
    expect(noFallback.priceOf('')).toBeUndefined();
  });

  it('keeps the first of two equally specific globs', () => {
    const globs = table([
      { model: 'gpt-*-mini', price: { input: '1', output: '1' } },
      { model: 'gpt-4*-min*', price: { input: '2', output: '2' } },
    ]);
    expect(globs.priceOf('gpt-4o-mini')?.pattern).toBe('gpt-*-mini');
  });
});

describe('bad price entries', () => {
  const attempt = (entry: unknown) => () => createPriceTable([{ model: 'ok', price: { input: '1', output: '1' } }, entry as PriceEntry], 'test');
  it.each([
    [{ model: 'gpt-4o', price: { input: '-1', output: '10' } }, 'pricing entry 2 (model "gpt-4o"): price "input" must not be negative (got "-1")'],
    [{ model: 'gpt-4o', price: { input: -0.5, output: '10' } }, 'pricing entry 2 (model "gpt-4o"): price "input" must not be negative (got -0.5)'],
    [{ model: 'gpt-4o', price: { input: '2.5', output: '0.0000001' } }, 'pricing entry 2 (model "gpt-4o"): price "output" has more than 6 decimal places (got "0.0000001"); prices are exact to one micro-dollar per million tokens'],
    [{ model: 'gpt-4o', price: { input: 1e-7, output: '1' } }, 'pricing entry 2 (model "gpt-4o"): price "input" has more than 6 decimal places (got 1e-7); prices are exact to one micro-dollar per million tokens'],
    [{ model: 'gpt-4o', price: { input: Number.NaN, output: '1' } }, 'pricing entry 2 (model "gpt-4o"): price "input" must be a finite number of USD per million tokens (got NaN)'],
    [{ model: 'gpt-4o', price: { input: 'two', output: '1' } }, 'pricing entry 2 (model "gpt-4o"): price "input" must be a decimal number of USD per million tokens, such as "2.50" (got "two")'],
    [{ model: 'gpt-4o', price: { input: '1', cachedInput: '$1', output: '1' } }, 'pricing entry 2 (model "gpt-4o"): price "cachedInput" must be a decimal number of USD per million tokens, such as "2.50" (got "$1")'],
    [{ model: 'gpt-4o', price: { input: '1', output: null } }, 'pricing entry 2 (model "gpt-4o"): price "output" must be a decimal number of USD per million tokens (got null)'],
    [{ model: 'gpt-4o', price: { input: '1', cacheWrite: '1e3', output: '1' } }, 'pricing entry 2 (model "gpt-4o"): price "cacheWrite" must be a decimal number of USD per million tokens, such as "2.50" (got "1e3")'],
    [{ model: '  ', price: { input: '1', output: '1' } }, 'pricing entry 2 (model "  "): "model" must be a non-empty model pattern'],
    [{ model: 'gpt-4o' }, 'pricing entry 2 (model "gpt-4o"): "price" must be an object with input and output prices'],
    [{ model: 'OK', price: { input: '1', output: '1' } }, 'pricing entry 2 (model "OK"): the model pattern "OK" is already priced by pricing entry 1'],
  ])('%j', (entry, message) => {
    expect(attempt(entry)).toThrow(GenopsError);
    expect(attempt(entry)).toThrow(message);
    try {
      attempt(entry)();
    } catch (error) {
      expect((error as GenopsError).code).toBe('invalid_policy');
    }
  });

  it('accepts zeros, trailing zeros past 6 decimals and whole numbers', () => {
    const price = table([{ model: 'm', price: { input: '0', cachedInput: '0.1250000', output: 15 } }]).priceOf('m')!;
    expect(price).toMatchObject({ inputPico: 0n, cachedInputPico: 125_000n, outputPico: 15_000_000n });
  });
});

describe('the default price table', () => {
  it('is dated and names a source for every entry', () => {
    expect(DEFAULT_PRICE_TABLE.version).toBe(DEFAULT_PRICES_VERSION);
    expect(DEFAULT_PRICES_VERSION).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    for (const entry of DEFAULT_PRICE_ENTRIES) expect(entry.source, entry.model).toMatch(/^https:\/\/(platform\.openai\.com|platform\.claude\.com|ai\.google\.dev|aws\.amazon\.com)\//);
  });

  it.each([
    ['gpt-4o', 'gpt-4o', 2_500_000n, 10_000_000n],
    ['gpt-4o-2024-08-06', 'gpt-4o', 2_500_000n, 10_000_000n],
    ['gpt-4o-2024-05-13', 'gpt-4o-2024-05-13', 5_000_000n, 15_000_000n],
    ['gpt-4o-mini-2024-07-18', 'gpt-4o-mini', 150_000n, 600_000n],
    ['gpt-4.1-2025-04-14', 'gpt-4.1', 2_000_000n, 8_000_000n],
    ['gpt-4.1-mini', 'gpt-4.1-mini', 400_000n, 1_600_000n],
    ['gpt-4.1-nano', 'gpt-4.1-nano', 100_000n, 400_000n],
    ['o3-2025-04-16', 'o3', 2_000_000n, 8_000_000n],
    ['o4-mini-2025-04-16', 'o4-mini', 1_100_000n, 4_400_000n],
    ['gpt-5-2025-08-07', 'gpt-5', 1_250_000n, 10_000_000n],
    ['gpt-5-mini', 'gpt-5-mini', 250_000n, 2_000_000n],
    ['text-embedding-3-small', 'text-embedding-3-small', 20_000n, 0n],
    ['text-embedding-3-large', 'text-embedding-3-large', 130_000n, 0n],
    ['claude-opus-4-1-20250805', 'claude-opus-4-1', 15_000_000n, 75_000_000n],
    ['claude-opus-4-20250514', 'claude-opus-4', 15_000_000n, 75_000_000n],
    ['claude-opus-4-5-20251101', 'claude-opus-4-5', 5_000_000n, 25_000_000n],
    ['claude-sonnet-4-5-20250929', 'claude-sonnet-4-5', 3_000_000n, 15_000_000n],
    ['claude-sonnet-4-20250514', 'claude-sonnet-4', 3_000_000n, 15_000_000n],
    ['claude-haiku-4-5-20251001', 'claude-haiku-4-5', 1_000_000n, 5_000_000n],
    ['claude-3-5-haiku-latest', 'claude-3-5-haiku', 800_000n, 4_000_000n],
    ['claude-opus', 'claude-opus', 4_000_000n, 20_000_000n],
    ['claude-sonnet', 'claude-sonnet', 2_000_000n, 10_000_000n],
    ['claude-haiku', 'claude-haiku', 100_000n, 500_000n],
  ])('%s is priced by %s', (model, pattern, inputPico, outputPico) => {
    expect(DEFAULT_PRICE_TABLE.priceOf(model)).toMatchObject({ pattern, inputPico, outputPico });
  });

  it('prices Anthropic cache writes at the 5-minute rate and cache hits at theirs', () => {
    expect(DEFAULT_PRICE_TABLE.priceOf('claude-sonnet-4-5')).toMatchObject({ cacheWritePico: 3_750_000n, cachedInputPico: 300_000n });
    expect(DEFAULT_PRICE_TABLE.priceOf('gpt-4o')).toMatchObject({ cachedInputPico: 1_250_000n });
  });

  it('leaves unknown models unpriced', () => {
    expect(DEFAULT_PRICE_TABLE.priceOf('llama-3.1-70b')).toBeUndefined();
    expect(DEFAULT_PRICE_TABLE.priceOf('gpt-4')).toBeUndefined();
  });
});
