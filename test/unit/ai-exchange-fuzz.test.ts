/**
 * A seeded, structure-aware fuzz of whole AI exchanges: real-shaped request bodies and provider
 * responses (JSON and SSE), mutated (flipped, truncated, spliced, nested thousands deep, keys
 * duplicated, wrong types, huge numbers, broken unicode) and split at random bytes, through the
 * ext_proc session (request reader, decision engine, budget reservation, body rewrite, response
 * meters) and the ext_authz adapter. Every input gets an answer: allowed, or a 4xx with a reason
 * code — never an exception (a gRPC INTERNAL behind Envoy), and every allowed exchange settles once.
 * A failure names its seed and case: rerun with that seed to replay it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createAuthzAdapter } from '../../src/envoy/authz-adapter.js';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/envoy/envoy-messages.js';
import { createExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { createBudgeter } from '../../src/governance/budgeting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import * as wire from '../support/llm-wire.js';
import { seededRandom } from '../support/seeded-random.js';

const SEED = 20_2026;
const EXCHANGES = 1_500;

const policy = loadPolicyText(
  readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace(
    '  rateLimits:',
    '  budgets:\n    - { name: fuzz-team, key: [team], amount: "1000", period: monthly, timeZone: UTC }\n  rateLimits:',
  ),
  'fuzz-policy.yaml',
);

type Random = () => number;
const pick = <T,>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const integer = (random: Random, max: number) => Math.floor(random() * max);

interface Api {
  readonly path: string;
  readonly body: (random: Random) => Record<string, unknown>;
  /** `binary`: AWS event-stream frames, mutated as bytes. */
  readonly responses: (model: string, stream: boolean) => { contentType: string; text: string; binary?: Buffer };
}

const usage = wire.tokenUsage({ input: 120, output: 40, cachedInput: 20 });
const messages = (random: Random) => Array.from({ length: 1 + integer(random, 4) }, (_, index) => ({ role: index % 2 ? 'assistant' : 'user', content: `turn ${index}: ${wire.DEFAULT_TEXT}` }));
const models = ['gpt-4o', 'claude-haiku-4-5', 'claude-opus-4-1', 'gpt-4o-mini', 'claude-sonnet-4-5'];

const APIS: readonly Api[] = [
  {
    path: '/v1/chat/completions',
    body: (random) => ({ model: pick(random, models), stream: random() < 0.6, max_tokens: 1 + integer(random, 500), messages: messages(random), ...(random() < 0.3 ? { stream_options: { include_usage: random() < 0.5 } } : {}) }),
    responses: (model, stream) => (stream ? { contentType: 'text/event-stream', text: wire.openAiChatSse({ model, usage, includeUsage: true }) } : { contentType: 'application/json', text: wire.openAiChatJson({ model, usage }) }),
  },
  {
    path: '/v1/responses',
    body: (random) => ({ model: pick(random, models), stream: random() < 0.6, max_output_tokens: 1 + integer(random, 500), input: messages(random), instructions: 'be brief' }),
    responses: (model, stream) => (stream ? { contentType: 'text/event-stream', text: wire.openAiResponsesSse({ model, usage }) } : { contentType: 'application/json', text: wire.openAiResponsesJson({ model, usage }) }),
  },
  {
    path: '/v1/embeddings',
    body: (random) => ({ model: 'text-embedding-3-small', input: random() < 0.5 ? wire.DEFAULT_TEXT : [1, 2, 3, [4, 5]] }),
    responses: () => ({ contentType: 'application/json', text: wire.openAiEmbeddingsJson({ model: 'text-embedding-3-small', inputTokens: 8, vectors: 2, dimensions: 4 }) }),
  },
  {
    path: '/v1/completions',
    body: (random) => ({ model: pick(random, ['gpt-3.5-turbo-instruct', 'gpt-4o']), prompt: wire.DEFAULT_TEXT, stream: random() < 0.5, max_tokens: 1 + integer(random, 200) }),
    responses: (model, stream) => (stream ? { contentType: 'text/event-stream', text: wire.openAiCompletionsSse({ model, usage, includeUsage: true }) } : { contentType: 'application/json', text: wire.openAiCompletionsJson({ model, usage }) }),
  },
  {
    path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
    body: (random) => ({ contents: [{ role: 'user', parts: [{ text: wire.DEFAULT_TEXT }] }], generationConfig: { maxOutputTokens: 1 + integer(random, 300) } }),
    responses: (model) => ({ contentType: 'text/event-stream', text: wire.geminiSse({ model: model || 'gemini-2.5-flash', usage }) }),
  },
  {
    path: '/v1beta/models/gemini-2.5-flash:generateContent',
    body: (random) => ({ contents: [{ role: 'user', parts: [{ text: wire.DEFAULT_TEXT }] }], generationConfig: { maxOutputTokens: 1 + integer(random, 300) } }),
    responses: (model) => ({ contentType: 'application/json', text: wire.geminiJson({ model: model || 'gemini-2.5-flash', usage }) }),
  },
  {
    path: '/model/anthropic.claude-haiku-4-5-20251001-v1:0/converse-stream',
    body: (random) => ({ messages: [{ role: 'user', content: [{ text: wire.DEFAULT_TEXT }] }], inferenceConfig: { maxTokens: 1 + integer(random, 300) } }),
    responses: (model) => ({ contentType: 'application/vnd.amazon.eventstream', text: '', binary: wire.bedrockConverseStream({ model: model || 'claude-haiku-4-5', usage }) }),
  },
  {
    path: '/model/anthropic.claude-haiku-4-5-20251001-v1:0/converse',
    body: (random) => ({ messages: [{ role: 'user', content: [{ text: wire.DEFAULT_TEXT }] }], inferenceConfig: { maxTokens: 1 + integer(random, 300) } }),
    responses: (model) => ({ contentType: 'application/json', text: wire.bedrockConverseJson({ model: model || 'claude-haiku-4-5', usage }) }),
  },
  {
    path: '/v1/messages',
    body: (random) => ({ model: pick(random, models), stream: random() < 0.6, max_tokens: 1 + integer(random, 500), system: 'be brief', messages: messages(random) }),
    responses: (model, stream) => (stream ? { contentType: 'text/event-stream', text: wire.anthropicMessagesSse({ model, usage }) } : { contentType: 'application/json', text: wire.anthropicMessagesJson({ model, usage }) }),
  },
];

const nested = (depth: number) => `${'['.repeat(depth)}"deep"${']'.repeat(depth)}`;
const nestedObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const WRONG_VALUES = ['-1', '0', '1.5', '1e400', '99999999999999999999999', '"5"', 'true', 'null', '[]', '{}', '"\\ud800"', '"👋"', '""', `"${'x'.repeat(300)}"`];

/** A copy of `bytes` with 1 to `most` bits flipped at random places. */
function flipBits(random: Random, bytes: Buffer, most: number): Buffer {
  const flipped = Buffer.from(bytes);
  for (let count = 1 + integer(random, most); count > 0; count--) {
    const at = integer(random, flipped.length);
    flipped[at] = flipped[at]! ^ (1 << integer(random, 8));
  }
  return flipped;
}

/** One mutation of a JSON text, as bytes (some mutations are not valid UTF-8 on purpose). */
function mutate(random: Random, text: string, other: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  switch (integer(random, 9)) {
    case 0:
      return flipBits(random, bytes, 4);
    case 1:
      return bytes.subarray(0, integer(random, bytes.length));
    case 2: {
      const from = Buffer.from(other, 'utf8');
      const start = integer(random, from.length);
      const at = integer(random, bytes.length);
      return Buffer.concat([bytes.subarray(0, at), from.subarray(start, start + integer(random, 200)), bytes.subarray(at)]);
    }
    case 3:
      return Buffer.from(text.replace(/"(messages|input|system|instructions|stream_options|usage|choices|delta|content)":/, (match) => `${match}${random() < 0.7 ? nested(4000 + integer(random, 6000)) : nestedObject(100 + integer(random, 3000))},"_x":`), 'utf8');
    case 4: {
      const key = pick(random, ['model', 'stream', 'max_tokens', 'max_output_tokens', 'usage', 'type']);
      return Buffer.from(text.replace(/}\s*$/, `,"${random() < 0.3 ? key.replace('e', '\\u0065') : key}":${pick(random, ['"claude-opus-4-1"', 'false', '5', '{"input_tokens":1}'])}}`), 'utf8');
    }
    case 5:
      return Buffer.from(text.replace(/"(model|stream|max_tokens|max_output_tokens|n|include_usage|input_tokens|output_tokens|prompt_tokens|completion_tokens|total_tokens)":\s*("[^"]*"|[^,}\]]+)/, (_match, key: string) => `"${key}":${pick(random, WRONG_VALUES)}`), 'utf8');
    case 6:
      return Buffer.concat([bytes.subarray(0, integer(random, bytes.length)), Buffer.from(pick(random, [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf0, 0x9f], [0x00]])), bytes.subarray(integer(random, bytes.length))]);
    case 7:
      return Buffer.from(pick(random, ['', ' ', 'null', '[]', '"text"', '{}', '{"model":null}', nested(5000), nestedObject(5000), '\ufeff{"model":"gpt-4o"}']), 'utf8');
    default:
      return bytes;
  }
}

/** Binary frames (AWS event stream): flipped, truncated, a frame's bytes repeated, or as they are. */
function mutateBytes(random: Random, bytes: Buffer): Buffer {
  switch (integer(random, 4)) {
    case 0:
      return flipBits(random, bytes, 6);
    case 1:
      return bytes.subarray(0, integer(random, bytes.length));
    case 2: {
      const start = integer(random, bytes.length);
      return Buffer.concat([bytes, bytes.subarray(start, start + integer(random, 300))]);
    }
    default:
      return bytes;
  }
}

function mutateSse(random: Random, text: string, other: string): Buffer {
  const events = text.split('\n\n');
  const index = integer(random, events.length);
  const choice = integer(random, 4);
  if (choice === 0) events[index] = `data: ${mutate(random, events[index]!.replace(/^(event: [^\n]*\n)?data: /, ''), other).toString('latin1')}`;
  else if (choice === 1) events.splice(index, 0, `data: ${nested(5000)}`);
  else if (choice === 2) events.length = index;
  else return mutate(random, text, other);
  return Buffer.from(events.join(random() < 0.5 ? '\n\n' : '\r\n\r\n'), 'utf8');
}

function answered(reply: ProcessingResponse | undefined, context: string): { denied: boolean } {
  expect(reply, context).toBeDefined();
  const immediate = 'immediate_response' in reply! ? reply.immediate_response : undefined;
  if (!immediate) return { denied: false };
  const status = immediate.status?.code ?? 0;
  expect(status >= 400 && status < 500, `${context}: status ${status}`).toBe(true);
  const body = JSON.parse(Buffer.from(immediate.body ?? []).toString('utf8')) as { reason_code?: string; message?: string };
  expect(body.reason_code, context).toMatch(/^(x_|[A-Z_]+$)/);
  expect(body.message, context).toBeTruthy();
  return { denied: true };
}

describe('seeded fuzz of AI exchanges (request reader, decision engine, budgets, rewrite, response meters)', () => {
  it(`answers every one of ${EXCHANGES} mutated exchanges with a decision, never an exception (seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    const reporter: DecisionReporter = { report: () => undefined };
    const engine = createDecisionEngine({ policy: () => policy });
    const budgeter = createBudgeter({ ledger: createMemoryBudgetLedger({ clock: () => 0 }), policy: () => policy, clock: () => Date.UTC(2026, 11, 4), observer: { event: () => undefined, account: () => undefined, backendFailed: () => undefined, overshoot: () => undefined } });
    const governor = createGovernor({ engine, budgeter });
    const settled: string[] = [];
    const factory = createExtProcSessionFactory({ governor, reporter, policy: () => policy, now: () => 0, settle: (exchange) => void settled.push(exchange.decision.id) });
    const authz = createAuthzAdapter({ governor, reporter, policy: () => policy, now: () => 0 });
    const outcomes = { allowed: 0, denied: 0, authzDenied: 0 };
    const started = Date.now();

    for (let index = 0; index < EXCHANGES; index++) {
      const api = pick(random, APIS);
      const original = api.body(random);
      const body = mutate(random, JSON.stringify(original), JSON.stringify(pick(random, APIS).body(random)));
      const context = `seed ${SEED} exchange ${index} ${api.path}: ${body.subarray(0, 120).toString('latin1')}`;
      const headers = { ':method': 'POST', ':path': api.path, 'content-type': 'application/json', 'x-genops-team': pick(random, ['ml-platform', 'ml-platform', 'product-team', 'data-science']), 'x-genops-customer-id': 'acme', 'x-genops-project': 'fuzz', 'x-genops-customer-tier': pick(random, ['premium', 'premium', 'standard', 'basic']) };
      const headerMap = { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) };

      const check = await authz.check({ attributes: { request: { http: { method: 'POST', path: api.path, headers, raw_body: body } } } });
      if (check.status.code !== 0) {
        outcomes.authzDenied++;
        expect(check.denied_response?.status.code, context).toBeGreaterThanOrEqual(400);
        expect(JSON.parse(check.denied_response!.body).reason_code, context).toBeTruthy();
      }

      const session = factory.open();
      const before = settled.length;
      answered(await session.handle({ request_headers: { headers: headerMap, end_of_stream: false } } as ProcessingRequest), context);
      const decision = answered(await session.handle({ request_body: { body, end_of_stream: true } }), context);
      if (decision.denied) {
        outcomes.denied++;
        session.close();
        expect(settled.length, context).toBe(before);
        continue;
      }
      outcomes.allowed++;
      const model = typeof original.model === 'string' ? original.model : 'gpt-4o';
      const response = api.responses(model, original.stream === true);
      const other = pick(random, APIS).responses(model, random() < 0.5).text;
      const mutated = response.binary ? mutateBytes(random, response.binary) : response.contentType === 'text/event-stream' ? mutateSse(random, response.text, other) : mutate(random, response.text, other);
      const status = pick(random, ['200', '200', '200', '429', '500']);
      await session.handle({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from(status) }, { key: 'content-type', raw_value: Buffer.from(pick(random, [response.contentType, response.contentType, 'text/plain', ''])) }] } } });
      const chunks = wire.splitAt(mutated, wire.randomOffsets(random, mutated.length, integer(random, 12)));
      const cutShort = random() < 0.1;
      for (const [position, chunk] of chunks.entries()) {
        if (cutShort && position === chunks.length - 1) break;
        expect(await session.handle({ response_body: { body: chunk, end_of_stream: position === chunks.length - 1 } }), context).toEqual({ response_body: { response: {} } });
      }
      if (chunks.length === 0) await session.handle({ response_body: { body: Buffer.alloc(0), end_of_stream: true } });
      session.close();
      expect(settled.length, `${context}: settles exactly once`).toBe(before + 1);
    }

    // Every kind of answer happened: the fuzz reaches allowed exchanges and every refusal kind it aims at.
    expect(outcomes.allowed).toBeGreaterThan(EXCHANGES / 10);
    expect(outcomes.denied).toBeGreaterThan(EXCHANGES / 10);
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 60_000);
});
