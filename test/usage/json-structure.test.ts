/**
 * What JSON.parse lets through and an AI request must not carry: a key twice (readers disagree on
 * which counts) and nesting deep enough to overflow recursive readers and writers.
 */
import { describe, expect, it } from 'vitest';
import { readAiBody } from '../../src/governance/ai-body.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile } from '../../src/policy/policy-store.js';
import { jsonStructureProblem, MAX_JSON_DEPTH } from '../../src/usage/json-structure.js';

const scan = (text: string) => jsonStructureProblem(Buffer.from(text, 'utf8'));
const nested = (depth: number, inner = '1') => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

describe('JSON structure of AI request bodies', () => {
  it('refuses a top-level key sent twice, however it is spelled', () => {
    expect(scan('{"model":"claude-opus-4-1","model":"claude-haiku-4-5"}')).toMatch(/"model" twice at the top level/);
    expect(scan('{"model":"claude-opus-4-1","mod\\u0065l":"claude-haiku-4-5"}')).toMatch(/"model" twice/);
    expect(scan('{ "model" : "a" ,\n\t"messages":[], "model":"b"}')).toMatch(/"model" twice/);
  });

  it('refuses a key twice in nested objects, naming where', () => {
    expect(scan('{"model":"gpt-4o","stream_options":{"include_usage":false,"include_usage":true}}')).toMatch(/"include_usage" twice in "stream_options"/);
    expect(scan('{"requests":[{"custom_id":"a","params":{"model":"claude-haiku-4-5","model":"claude-opus-4-1"}}]}')).toMatch(/"model" twice in "requests\[\]\.params"/);
  });

  it('accepts the same key in different objects, keys that look alike, and keys inside strings', () => {
    expect(scan('{"model":"gpt-4o","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"\\"role\\":1, \\"model\\":2"}]}')).toBeUndefined();
    expect(scan('{"a":{"b":1},"c":{"b":2},"a\\"":4,"a\\\\":5}')).toBeUndefined();
    expect(scan('{"model":"gpt-4o","x":"\\\\","model2":1}')).toBeUndefined();
  });

  it('refuses a key twice in two cases near the top, where Go readers (case-insensitive, last wins) would take the other', () => {
    expect(scan('{"model":"claude-haiku-4-5","Model":"claude-opus-4-1"}')).toMatch(/"Model" twice at the top level \(keys that differ only in case/);
    expect(scan('{"model":"a","stream_options":{"include_usage":true,"INCLUDE_USAGE":false}}')).toMatch(/"INCLUDE_USAGE" twice in "stream_options"/);
    // Unicode folding: U+212A KELVIN SIGN is "k", U+017F LONG S is "s" (written raw and as an escape).
    expect(scan('{"max_tokens":16,"max_to\u212Aens":100000}')).toMatch(/twice/);
    expect(scan('{"stream":false,"\\u017Ftream":true}')).toMatch(/twice/);
    expect(scan('{"requests":[{"custom_id":"a","params":{"model":"claude-haiku-4-5","MODEL":"claude-opus-4-1"}}]}')).toMatch(/twice in "requests\[\]\.params"/);
  });

  it('refuses another case of a field the service acts on, alone, where it lives (a case-ignoring reader would act on it unseen)', () => {
    expect(scan('{"model":"gpt-4o","MAX_TOKENS":100000}')).toMatch(/"MAX_TOKENS" at the top level: the field is spelled "max_tokens"/);
    expect(scan('{"model":"gpt-4o","stream":true,"stream_options":{"Include_Usage":false}}')).toMatch(/in "stream_options"/);
    expect(scan('{"contents":[],"generationConfig":{"MaxOutputTokens":9}}')).toMatch(/"maxOutputTokens"/);
    // Elsewhere such keys are data: a schema's property, a metadata entry.
    expect(scan('{"model":"a","metadata":{"N":"1"},"generationConfig":{"responseSchema":{"properties":{"N":{},"Model":{}}}}}')).toBeUndefined();
  });

  it('accepts keys that differ only in case deep inside, where tool schemas name their properties', () => {
    expect(scan('{"model":"a","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"id":{},"ID":{}}}}}]}')).toBeUndefined();
    expect(scan('{"model":"a","tools":[{"name":"f","input_schema":{"properties":{"Name":{},"name":{}}}}]}')).toBeUndefined();
  });

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH}, and reads ${MAX_JSON_DEPTH} levels`, () => {
    expect(scan(nested(MAX_JSON_DEPTH))).toBeUndefined();
    expect(scan(nested(MAX_JSON_DEPTH + 1))).toMatch(`deeper than ${MAX_JSON_DEPTH} levels`);
    expect(scan(`{"model":"gpt-4o","messages":${nested(5000)}}`)).toMatch(/deeper/);
    // Brackets inside strings are text.
    expect(scan(`{"model":"gpt-4o","x":"${'['.repeat(5000)}"}`)).toBeUndefined();
  });

  it('leaves invalid JSON to the parser', () => {
    for (const text of ['', '{', '{"model', '{"a\\u12":1}', '}}}]]]', 'not json']) expect(scan(text)).toBeUndefined();
  });

  it('turns both into 400 x_malformed_body problems before the body is parsed or rewritten', () => {
    const usage = loadPolicyFile(DEFAULT_POLICY_PATH).usage;
    const duplicate = readAiBody('anthropic.messages', Buffer.from('{"model":"claude-opus-4-1","max_tokens":5,"model":"claude-haiku-4-5","messages":[]}'), usage, { canRewrite: true });
    expect(duplicate.input.problem).toEqual({ tooLarge: false, message: expect.stringContaining('"model" twice') });
    const deep = readAiBody('openai.chat', Buffer.from(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":${nested(5000, '"x"')}}]}`), usage, { canRewrite: true });
    expect(deep.input.problem?.message).toMatch(/deeper than/);
  });
});
