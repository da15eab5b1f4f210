/**
 * The usage record is written by createHotLogLine, not by pino's per-key loop: the line must be
 * byte for byte the one pino writes for the same fields (log shippers and the tests that parse
 * the service's stdout read it), on the root logger and on a worker's child logger.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { createHotLogLine } from '../../src/telemetry/hot-log-line.js';
import { createLogger } from '../../src/telemetry/logger.js';

const FIELDS = {
  event: 'usage',
  decision_id: '0192f0a4-5b6c-7d8e-9f00-112233445566',
  trace_id: undefined,
  team: 'ml-platform',
  project: 'quote "and" back\\slash, ünïcödé 👋\n',
  stream: false,
  tokens: { input: 120, cached_input: 0, cache_write: 0, output: 40, reasoning: 0 },
  cost: '0.0012',
  nan: Number.NaN,
  upstream_status: 200,
  provider_error: null,
  budgets: ['team-a', 'team-b'],
  reserved: 0.0219,
};

function linesOf(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');
}

describe('createHotLogLine', () => {
  it.each([
    ['the root logger', (logger: pino.Logger) => logger],
    ['a worker child logger', (logger: pino.Logger) => logger.child({ worker: 1 })],
  ])('writes the line pino writes, byte for byte, on %s', (_name, derive) => {
    const path = join(mkdtempSync(join(tmpdir(), 'hot-line-')), 'log.jsonl');
    const logger = derive(createLogger({ level: 'info', sync: true, destination: path }));
    const hot = createHotLogLine(logger, 'info', 'ai request usage');
    logger.info(FIELDS, 'ai request usage');
    hot(FIELDS);
    hot({});
    logger.info({}, 'ai request usage');
    const [fromPino, fromHot, emptyHot, emptyPino] = linesOf(path);
    // The time differs by the milliseconds between the two calls; everything else is identical.
    const withoutTime = (line: string | undefined) => line?.replace(/"time":"[^"]+"/, '"time":""');
    expect(withoutTime(fromHot)).toBe(withoutTime(fromPino));
    expect(withoutTime(emptyHot)).toBe(withoutTime(emptyPino));
    expect(JSON.parse(fromHot!)).toMatchObject({ level: 'info', name: 'genops-mesh', msg: 'ai request usage', project: FIELDS.project, nan: null, tokens: FIELDS.tokens });
  });

  it('writes nothing below the logger level', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'hot-line-')), 'log.jsonl');
    const logger = createLogger({ level: 'warn', sync: true, destination: path });
    createHotLogLine(logger, 'info', 'ai request usage')(FIELDS);
    logger.warn({ event: 'marker' }, 'marker');
    expect(linesOf(path).map((line) => JSON.parse(line).event)).toEqual(['marker']);
  });

  it('goes through pino on a logger createLogger did not make', () => {
    const written: string[] = [];
    const logger = pino({ level: 'info', mixin: () => ({ mixed: true }) }, { write: (line: string) => void written.push(line) });
    createHotLogLine(logger, 'info', 'ai request usage')({ event: 'usage' });
    expect(JSON.parse(written[0]!)).toMatchObject({ event: 'usage', mixed: true, msg: 'ai request usage' });
  });
});
