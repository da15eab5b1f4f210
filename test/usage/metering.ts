import { isDeepStrictEqual } from 'node:util';
import { expect } from 'vitest';
import type { AiApi } from '../../src/usage/ai-api.js';
import { createUsageMeter, type UsageReport } from '../../src/usage/response-usage.js';
import { offsetsInsideMultibyteCharacters, randomOffsets, splitAt } from '../support/llm-wire.js';
import { seededRandom } from '../support/seeded-random.js';

/** The report of a response body pushed in `chunks`. */
export function meter(api: AiApi, contentType: string | undefined, chunks: readonly Uint8Array[], options: { maxEventBytes?: number; maxJsonBytes?: number } = {}): UsageReport {
  const usageMeter = createUsageMeter({ api, contentType, ...options });
  for (const chunk of chunks) usageMeter.push(chunk);
  return usageMeter.end();
}

/** The same report whatever the chunk boundaries: one cut at every byte, cuts inside multi-byte characters, random cuts, byte by byte. */
export function expectSameReportWhateverTheSplits(api: AiApi, contentType: string, body: string | Buffer, expected: UsageReport): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  expect(meter(api, contentType, [bytes])).toEqual(expected);
  const mismatches: number[] = [];
  for (let offset = 1; offset < bytes.length; offset += 1) {
    if (!isDeepStrictEqual(meter(api, contentType, splitAt(bytes, [offset])), expected)) mismatches.push(offset);
  }
  expect(mismatches).toEqual([]);
  expect(meter(api, contentType, splitAt(bytes, offsetsInsideMultibyteCharacters(bytes)))).toEqual(expected);
  const random = seededRandom(bytes.length);
  for (let round = 0; round < 100; round += 1) {
    expect(meter(api, contentType, splitAt(bytes, randomOffsets(random, bytes.length, 2 + Math.floor(random() * 30))))).toEqual(expected);
  }
  expect(meter(api, contentType, splitAt(bytes, Array.from({ length: bytes.length }, (_, index) => index)))).toEqual(expected);
}

/** The service's estimate of a text's tokens (a token per 4 characters). */
export const estimateOf = (text: string) => Math.ceil(text.length / 4);
