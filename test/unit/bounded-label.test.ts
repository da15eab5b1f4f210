/**
 * Capped metric label values keep the values in use: a burst of junk cannot push them into
 * `_other`, and cannot hold its slots once it stops.
 */
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createBoundedLabel } from '../../src/telemetry/bounded-label.js';
import { createCounterChildren } from '../../src/telemetry/labelled-children.js';

const MINUTE = 60_000;

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('createBoundedLabel', () => {
  it('keeps values in use when a burst of new values arrives, and counts the burst as overflow', () => {
    const time = clock();
    const evicted: string[] = [];
    let overflowed = 0;
    const label = createBoundedLabel(3, { now: time.now, minIdleMs: 5 * MINUTE, onEvict: (value) => evicted.push(value), onOverflow: () => overflowed++ });
    expect(label('gpt-4o')).toBe('gpt-4o');
    expect(label('claude-haiku-4-5')).toBe('claude-haiku-4-5');
    const junk = Array.from({ length: 100 }, (_, index) => label(`junk-${index}`));
    // One slot was free; the rest of the burst finds every slot in use.
    expect(junk.filter((value) => value !== '_other')).toEqual(['junk-0']);
    expect(overflowed).toBe(99);
    expect(evicted).toEqual([]);
    expect(label('gpt-4o')).toBe('gpt-4o');
    expect(label('claude-haiku-4-5')).toBe('claude-haiku-4-5');
  });

  it('gives a new value the slot of the least recently used one once that one has been idle long enough', () => {
    const time = clock();
    const evicted: string[] = [];
    const label = createBoundedLabel(3, { now: time.now, minIdleMs: 5 * MINUTE, onEvict: (value) => evicted.push(value) });
    // The first values to arrive are junk: under a first-come cap the real model would be _other forever.
    for (const value of ['junk-a', 'junk-b', 'junk-c']) label(value);
    expect(label('claude-sonnet-4-5')).toBe('_other');
    time.advance(2 * MINUTE);
    label('junk-b'); // still sent now and then: it keeps its slot
    time.advance(4 * MINUTE);
    expect(label('claude-sonnet-4-5')).toBe('claude-sonnet-4-5');
    expect(evicted).toEqual(['junk-a']);
    expect(label('claude-opus-4-1')).toBe('claude-opus-4-1');
    expect(evicted).toEqual(['junk-a', 'junk-c']);
    // junk-b was used 4 minutes ago: not idle enough yet.
    expect(label('gpt-4o')).toBe('_other');
    time.advance(MINUTE);
    expect(label('gpt-4o')).toBe('gpt-4o');
    expect(evicted).toEqual(['junk-a', 'junk-c', 'junk-b']);
    expect(label('junk-a')).toBe('_other');
  });

  it('never lets a value a caller may not add take a slot, and maps absent to the empty label', () => {
    const label = createBoundedLabel(2, { now: () => 0 });
    expect(label(undefined)).toBe('');
    expect(label('unlisted', false)).toBe('_other');
    expect(label('listed')).toBe('listed');
    expect(label('listed', false)).toBe('listed');
  });
});

describe('counter children forget an evicted value', () => {
  it('removes every series with that value from the counter and the cache; a value that returns restarts from 0', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'requests_total', help: 'h', labelNames: ['team', 'model'], registers: [registry] });
    const count = createCounterChildren(counter);
    count({ team: 'a', model: 'junk' }, 2);
    count({ team: 'b', model: 'junk' });
    count({ team: 'a', model: 'gpt-4o' }, 5);
    count.forget('model', 'junk');
    const series = async () => (await counter.get()).values.map(({ labels, value }) => `${labels.team}/${labels.model}=${value}`);
    expect(await series()).toEqual(['a/gpt-4o=5']);
    count({ team: 'a', model: 'junk' });
    expect(await series()).toEqual(['a/gpt-4o=5', 'a/junk=1']);
  });
});
