import { describe, expect, it } from 'vitest';
import { createSseParser, type SseEvent } from '../../src/usage/sse-parser.js';
import {
  anthropicMessagesSse,
  openAiChatSse,
  openAiResponsesSse,
  randomOffsets,
  seededRandom,
  splitAt,
  tokenUsage,
} from '../support/llm-wire.js';

function parse(chunks: readonly (string | Uint8Array)[], options?: { maxEventBytes?: number }): { events: SseEvent[]; dropped: number } {
  const parser = createSseParser(options);
  const events: SseEvent[] = [];
  const collect = (event: SseEvent) => events.push(event);
  for (const chunk of chunks) parser.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk, collect);
  parser.end(collect);
  return { events, dropped: parser.droppedEvents };
}

const events = (...chunks: string[]) => parse(chunks).events;

/** The spec's algorithm on the whole decoded text, written the obvious way: the oracle for split tests. */
function referenceParse(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  lines.pop(); // the text after the last line end is an incomplete line
  let type: string | undefined;
  let data: string[] = [];
  for (const line of lines) {
    if (line === '') {
      if (data.length > 0) out.push({ event: type, data: data.join('\n') });
      type = undefined;
      data = [];
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
  }
  return out;
}

describe('SSE parser: the spec', () => {
  it('dispatches an event at a blank line, with or without one space after "data:"', () => {
    expect(events('data: hello\n\n')).toEqual([{ event: undefined, data: 'hello' }]);
    expect(events('data:hello\n\n')).toEqual([{ event: undefined, data: 'hello' }]);
    expect(events('data:  two spaces\n\n')).toEqual([{ event: undefined, data: ' two spaces' }]);
    expect(events('data: a: b\n\n')).toEqual([{ event: undefined, data: 'a: b' }]);
  });

  it('names the event type from "event:" and forgets it after dispatch', () => {
    expect(events('event: message_start\ndata: {"a":1}\n\ndata: next\n\n')).toEqual([
      { event: 'message_start', data: '{"a":1}' },
      { event: undefined, data: 'next' },
    ]);
  });

  it('joins several data lines with "\\n"; "data" and "data:" alone give empty lines', () => {
    expect(events('data: one\ndata: two\ndata\ndata:\n\n')).toEqual([{ event: undefined, data: 'one\ntwo\n\n' }]);
    expect(events('data\n\n')).toEqual([{ event: undefined, data: '' }]);
  });

  it('dispatches nothing for an event without data, and the type does not leak into the next one', () => {
    expect(events('event: ping\n\ndata: x\n\n')).toEqual([{ event: undefined, data: 'x' }]);
    expect(events('\n\n\n')).toEqual([]);
  });

  it('ignores comments, id, retry and unknown fields', () => {
    expect(events(': keep-alive\nid: 7\nretry: 1000\nfoo: bar\ndatax: no\ndata: yes\n:another\n\n')).toEqual([{ event: undefined, data: 'yes' }]);
    expect(events(':\n\n')).toEqual([]);
  });

  it('accepts LF, CRLF and CR line ends, mixed', () => {
    expect(events('data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n')).toEqual(['a', 'b', 'c', 'd'].map((data) => ({ event: undefined, data })));
  });

  it('treats a CR ending one chunk and an LF starting the next as one line end', () => {
    expect(events('data: a\r', '\ndata: b\r', '\n\r', '\n')).toEqual([{ event: undefined, data: 'a\nb' }]);
    // ... but a CR then a CR is two line ends: a blank line.
    expect(events('data: a\r', '\rdata: b\r', '', '\r')).toEqual([
      { event: undefined, data: 'a' },
      { event: undefined, data: 'b' },
    ]);
  });

  it('delivers several events from one chunk and one event from many chunks', () => {
    expect(events('data: 1\n\ndata: 2\n\nevent: e\ndata: 3\n\n')).toHaveLength(3);
    expect(events('da', 'ta', ': he', 'llo', '\n', '\n')).toEqual([{ event: undefined, data: 'hello' }]);
  });

  it('decodes a multi-byte character split at every byte', () => {
    const text = 'data: Zürich 日本 👋\n\n';
    const bytes = Buffer.from(text, 'utf8');
    for (let first = 1; first < bytes.length; first += 1) {
      for (let second = first + 1; second < bytes.length; second += 1) {
        expect(parse(splitAt(bytes, [first, second])).events).toEqual([{ event: undefined, data: 'Zürich 日本 👋' }]);
      }
    }
  });

  it('discards an event the stream ends in the middle of', () => {
    expect(events('data: complete\n\ndata: cut sho')).toEqual([{ event: undefined, data: 'complete' }]);
    expect(events('data: line done but no blank line\n')).toEqual([]);
  });

  it('skips a UTF-8 byte-order mark at the start only, even split across chunks', () => {
    expect(parse([Buffer.from([0xef]), Buffer.from([0xbb, 0xbf]), 'data: x\n\n']).events).toEqual([{ event: undefined, data: 'x' }]);
    expect(events('\uFEFFevent: a\ndata: x\n\n')).toEqual([{ event: 'a', data: 'x' }]);
    expect(events('data: x\n\n\uFEFFdata: y\n\n')).toEqual([{ event: undefined, data: 'x' }]);
  });

  it('accepts Uint8Array views as well as Buffers', () => {
    const backing = new Uint8Array(Buffer.from('xxdata: view\n\nxx'));
    expect(parse([backing.subarray(2, backing.length - 2)]).events).toEqual([{ event: undefined, data: 'view' }]);
  });
});

const usage = tokenUsage({ input: 1234, cachedInput: 200, cacheWrite: 30, output: 321, reasoning: 64 });
const PROVIDER_STREAMS: Record<string, string> = {
  'openai chat (include_usage)': openAiChatSse({ model: 'gpt-4o-2024-08-06', usage, includeUsage: true }),
  'openai chat': openAiChatSse({ model: 'gpt-4o-2024-08-06', usage, includeUsage: false }),
  'openai responses': openAiResponsesSse({ model: 'gpt-4.1-2025-04-14', usage }),
  'anthropic messages': anthropicMessagesSse({ model: 'claude-sonnet-4-5-20250929', usage: tokenUsage({ input: 500, cachedInput: 100, cacheWrite: 50, output: 80 }), thinking: 'Hmm, let me see… ok.' }),
};

describe('SSE parser: real provider streams split anywhere', () => {
  for (const [name, stream] of Object.entries(PROVIDER_STREAMS)) {
    const variants = { LF: stream, CRLF: stream.replaceAll('\n', '\r\n'), CR: stream.replaceAll('\n', '\r') };
    for (const [ending, text] of Object.entries(variants)) {
      it(`${name}, ${ending}: the same events whatever the chunk boundaries`, () => {
        const bytes = Buffer.from(text, 'utf8');
        const expected = referenceParse(text);
        expect(expected.length).toBeGreaterThan(5);
        expect(parse([bytes]).events).toEqual(expected);
        // One cut at every byte position.
        for (let offset = 1; offset < bytes.length; offset += 1) {
          const got = parse(splitAt(bytes, [offset])).events;
          if (got.length !== expected.length || JSON.stringify(got) !== JSON.stringify(expected)) expect({ offset, got }).toEqual({ offset, got: expected });
        }
        // Many random cuts (reproducible seeds), and byte-by-byte.
        const random = seededRandom(bytes.length);
        for (let round = 0; round < 200; round += 1) {
          expect(parse(splitAt(bytes, randomOffsets(random, bytes.length, 1 + Math.floor(random() * 40)))).events).toEqual(expected);
        }
        expect(parse(splitAt(bytes, Array.from({ length: bytes.length }, (_, index) => index))).events).toEqual(expected);
      });
    }
  }
});

describe('SSE parser: bounded memory', () => {
  it('drops an event larger than maxEventBytes, counts it and resynchronises at the next blank line', () => {
    const big = `event: big\ndata: ${'x'.repeat(500)}\ndata: more\n\n`;
    const result = parse([`data: before\n\n${big}data: after\n\n`], { maxEventBytes: 100 });
    expect(result.events).toEqual([
      { event: undefined, data: 'before' },
      { event: undefined, data: 'after' },
    ]);
    expect(result.dropped).toBe(1);
  });

  it('drops an event whose many small data lines add up past the bound', () => {
    const lines = Array.from({ length: 50 }, () => 'data: 0123456789\n').join('');
    const result = parse([`${lines}\ndata: ok\n\n`], { maxEventBytes: 200 });
    expect(result.events).toEqual([{ event: undefined, data: 'ok' }]);
    expect(result.dropped).toBe(1);
  });

  it('never holds more than the bound while a huge line arrives in small pieces', () => {
    const parser = createSseParser({ maxEventBytes: 4096 });
    const seen: SseEvent[] = [];
    let maxBuffered = 0;
    parser.push(Buffer.from('event: huge\ndata: '), (event) => seen.push(event));
    const piece = Buffer.alloc(1000, 0x61);
    for (let index = 0; index < 10_000; index += 1) {
      parser.push(piece, (event) => seen.push(event));
      maxBuffered = Math.max(maxBuffered, parser.bufferedBytes);
    }
    parser.push(Buffer.from('\n\ndata: fine\n\n'), (event) => seen.push(event));
    expect(maxBuffered).toBeLessThanOrEqual(4096);
    expect(parser.bufferedBytes).toBe(0);
    expect(seen).toEqual([{ event: undefined, data: 'fine' }]);
    expect(parser.droppedEvents).toBe(1);
  });

  it('does not buffer a long comment line (nor count it as a dropped event)', () => {
    const parser = createSseParser({ maxEventBytes: 64 });
    const seen: SseEvent[] = [];
    parser.push(Buffer.from(':'), (event) => seen.push(event));
    for (let index = 0; index < 100; index += 1) parser.push(Buffer.alloc(100, 0x20), (event) => seen.push(event));
    expect(parser.bufferedBytes).toBe(0);
    parser.push(Buffer.from('\ndata: after comment\n\n'), (event) => seen.push(event));
    expect(seen).toEqual([{ event: undefined, data: 'after comment' }]);
    expect(parser.droppedEvents).toBe(0);
  });

  it('an event exactly at the bound passes', () => {
    // dataBytes counts the value plus its joining newline.
    const result = parse([`data: ${'y'.repeat(99)}\n\n`], { maxEventBytes: 100 });
    expect(result.events).toEqual([{ event: undefined, data: 'y'.repeat(99) }]);
  });

  it('counts an oversized event the stream ends inside', () => {
    const result = parse([`data: ${'z'.repeat(300)}`], { maxEventBytes: 100 });
    expect(result).toEqual({ events: [], dropped: 1 });
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => createSseParser({ maxEventBytes: 0 })).toThrow(/maxEventBytes/);
  });
});
