/**
 * Observed metering across replicas: the deciding session of replica A hands an event stream over
 * sealed in its dynamic metadata; the metering stream may reach replica B, which adopts the
 * exchange from the handoff and settles it, both claiming it through the same real Redis
 * (redis-exchange-claims.ts). Each ordering settles exactly once: B's metering, A's fallback, a
 * replayed handoff, a forged one, and a metering replica that dies mid-stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/envoy/envoy-messages.js';
import { createExchangeHandoff } from '../../src/envoy/exchange-handoff.js';
import { createExtProcSessionFactory, METERING_NAMESPACE, type ExtProcSession, type ExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { createSharedMetering, type SharedMeteringOptions } from '../../src/envoy/shared-metering.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import type { Decision } from '../../src/governance/decision.js';
import { createGovernor } from '../../src/governance/governor.js';
import type { FinishedExchange } from '../../src/governance/usage-accounting.js';
import type { ExchangeClaims } from '../../src/limits/exchange-claims.js';
import { connectRedis, waitForRedis, type RedisClient } from '../../src/limits/redis-connection.js';
import { createRedisExchangeClaims } from '../../src/limits/redis-exchange-claims.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile } from '../../src/policy/policy-store.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';

const GRACE_MS = 60;
const CLAIM_TTL_MS = 150;
const SECRET = 'a-per-deployment-secret-of-32-characters!';
const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
const reporter: DecisionReporter = { report: () => undefined };
const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });
const CONTEXT = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', authorization: 'Bearer sk-secret' };
const SSE = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'claude-sonnet-4-5', choices: [{ index: 0, delta: { content: 'Hi' } }] })}\n\ndata: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'claude-sonnet-4-5', choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })}\n\ndata: [DONE]\n\n`;
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let redis: RunningRedis;
let client: RedisClient;
beforeAll(async () => {
  redis = await startRedis();
  client = connectRedis(redis.url, { timeoutMs: 2_000, onError: () => undefined });
  if (!(await waitForRedis(client, 5_000))) throw new Error('redis not ready');
}, 30_000);
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

let prefixes = 0;
interface Replica {
  readonly factory: ExtProcSessionFactory;
  readonly settled: FinishedExchange[];
  readonly headersSeen: (string | undefined)[];
  readonly unmatched: string[];
  readonly refused: string[];
  readonly kept: string[];
  readonly forgotten: string[];
}

/** Replicas sharing one Redis keyspace (a fresh prefix per test) and one decision-id sequence. */
function deployment(options: { secret?: string; keepAlive?: boolean } = {}) {
  const keyPrefix = `test:${++prefixes}`;
  let counter = 0;
  const replica = (name: string, secret = options.secret ?? SECRET, overrides: Partial<SharedMeteringOptions> = {}): Replica => {
    const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => `${keyPrefix}-decision-${++counter}` });
    const state: Replica = { factory: undefined as never, settled: [], headersSeen: [], unmatched: [], refused: [], kept: [], forgotten: [] };
    const claims: ExchangeClaims = createRedisExchangeClaims({ client, keyPrefix });
    const sharedMetering = createSharedMetering({
      handoff: createExchangeHandoff({ secret, clock: Date.now, maxAgeMs: 60_000 }),
      claims,
      owner: name,
      claimTtlMs: CLAIM_TTL_MS,
      retainMs: 60_000,
      keepHold: (decision: Decision) => state.kept.push(decision.id),
      forgetHold: (decision: Decision) => state.forgotten.push(decision.id),
      observer: { refused: (id) => state.refused.push(id), lost: () => undefined, failed: (error) => { throw error; }, abandoned: () => undefined },
      ...overrides,
    });
    const factory = createExtProcSessionFactory({
      governor: createGovernor({ engine }),
      reporter,
      policy: () => policy,
      now: () => performance.now(),
      settle: (exchange, headers) => {
        state.settled.push(exchange);
        state.headersSeen.push(headers('traceparent'));
      },
      meteringGraceMs: GRACE_MS,
      unmatchedMetering: (id) => state.unmatched.push(id),
      sharedMetering,
    });
    return Object.assign(state, { factory });
  };
  return { replica };
}

/** The deciding stream through its decision and an event stream's response headers: the hand-over reply. */
async function handOver(session: ExtProcSession): Promise<ProcessingResponse> {
  await session.handle({ request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', ...CONTEXT }) } });
  const body = JSON.stringify({ model: 'claude-sonnet-4-5', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }] });
  const decided = await session.handle({ request_body: { body: Buffer.from(body), end_of_stream: true } });
  expect(decided).toHaveProperty('request_body');
  return (await session.handle({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream', 'x-envoy-upstream-service-time': '3' }) } }))!;
}

function metadataOf(reply: ProcessingResponse): Record<string, string> {
  const fields = reply.dynamic_metadata?.fields?.[METERING_NAMESPACE]?.structValue?.fields ?? {};
  return Object.fromEntries(Object.entries(fields).map(([key, value]) => [key, value?.stringValue ?? '']));
}

/** What the metering filter forwards: the genops namespace the deciding reply emitted. */
const meter = (handed: Record<string, string>, message: ProcessingRequest): ProcessingRequest => ({
  ...message,
  observability_mode: true,
  metadata_context: { filter_metadata: { [METERING_NAMESPACE]: { fields: Object.fromEntries(Object.entries(handed).map(([key, value]) => [key, { stringValue: value }])) } } },
});

/** A metering stream: the response headers, then (`pauseMs` later: a stream that lasts) its body. */
async function meterStream(session: ExtProcSession, handed: Record<string, string>, body = SSE, end = true, pauseMs = 0): Promise<void> {
  await session.handle(meter(handed, { response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream', 'x-envoy-upstream-service-time': '3' }) } }));
  if (pauseMs > 0) await wait(pauseMs);
  await session.handle(meter(handed, { response_body: { body: Buffer.from(body), end_of_stream: end } }));
}

/** Settlement on an adopted exchange waits for Redis: poll until `count` settled or the time is up. */
async function settledCount(replicas: readonly Replica[], count: number, ms = 2_000): Promise<number> {
  const deadline = Date.now() + ms;
  const total = () => replicas.reduce((sum, replica) => sum + replica.settled.length, 0);
  while (total() < count && Date.now() < deadline) await wait(10);
  return total();
}

describe('observed metering across replicas (shared claims in a real Redis)', () => {
  it('hands the exchange over sealed, without the credentials, and bounded', async () => {
    const { replica } = deployment();
    const a = replica('a');
    const handed = metadataOf(await handOver(a.factory.open({ observedMetering: true })));
    expect(handed.exchange_id).toMatch(/-decision-\d+$/);
    expect(handed.handoff).toMatch(/^v1\.[\w-]+\.[\w-]+$/);
    expect(handed.handoff!.length).toBeLessThan(4_096);
    const payload = Buffer.from(handed.handoff!.split('.')[1]!, 'base64url').toString('utf8');
    expect(payload).not.toContain('sk-secret');
    expect(payload).not.toContain('Hello');
    expect(JSON.parse(payload)).toMatchObject({ decision: { id: handed.exchange_id, context: { team: 'ml-platform', project: 'chatbot' } }, headers: { traceparent: CONTEXT.traceparent } });
  });

  it('settles on the replica that meters it, once: the deciding replica\'s fallback finds it settled', async () => {
    const { replica } = deployment();
    const [a, b] = [replica('a'), replica('b')];
    const decider = a.factory.open({ observedMetering: true });
    const handed = metadataOf(await handOver(decider));
    const metering = b.factory.open();
    // Longer than a claim's lifetime: B extends its claim and renews the budget hold while it meters.
    await meterStream(metering, handed, SSE, true, CLAIM_TTL_MS * 2);
    metering.close();
    decider.close();
    expect(await settledCount([a, b], 1)).toBe(1);
    await wait(GRACE_MS * 3);
    expect(a.settled).toHaveLength(0);
    expect(b.settled).toHaveLength(1);
    expect(b.settled[0]).toMatchObject({ outcome: 'completed', upstreamStatus: 200, decision: { id: handed.exchange_id, context: { team: 'ml-platform' } } });
    expect(b.settled[0]!.report?.usage).toMatchObject({ input: 10, output: 5 });
    expect(b.headersSeen).toEqual([CONTEXT.traceparent]);
    expect(b.kept).toEqual([handed.exchange_id]);
    expect(a.forgotten).toEqual([handed.exchange_id]);
    expect([...a.unmatched, ...b.unmatched]).toEqual([]);
  });

  it('settles once with the fallback when the metering stream never came, and a late foreign one is not settled again', async () => {
    const { replica } = deployment();
    const [a, b] = [replica('a'), replica('b')];
    const decider = a.factory.open({ observedMetering: true });
    const handed = metadataOf(await handOver(decider));
    decider.close();
    expect(await settledCount([a, b], 1)).toBe(1);
    expect(a.settled[0]).toMatchObject({ outcome: 'interrupted' });
    const late = b.factory.open();
    await meterStream(late, handed);
    late.close();
    await wait(100);
    expect(b.settled).toHaveLength(0);
    expect(a.settled).toHaveLength(1);
  });

  it('settles a replayed handoff once: a second metering stream on a third replica loses', async () => {
    const { replica } = deployment();
    const [a, b, c] = [replica('a'), replica('b'), replica('c')];
    const decider = a.factory.open({ observedMetering: true });
    const handed = metadataOf(await handOver(decider));
    const first = b.factory.open();
    const replay = c.factory.open();
    await meterStream(first, handed);
    await meterStream(replay, handed);
    first.close();
    replay.close();
    decider.close();
    expect(await settledCount([a, b, c], 1)).toBe(1);
    await wait(GRACE_MS * 3);
    expect([a.settled.length, b.settled.length, c.settled.length]).toEqual([0, 1, 0]);
  });

  it('settles a stream metered on its deciding replica once, and a replay of its handoff on another replica loses', async () => {
    const { replica } = deployment();
    const [a, b] = [replica('a'), replica('b')];
    const decider = a.factory.open({ observedMetering: true });
    const handed = metadataOf(await handOver(decider));
    const local = a.factory.open();
    const replay = b.factory.open();
    await meterStream(local, handed);
    await meterStream(replay, handed);
    local.close();
    replay.close();
    decider.close();
    expect(await settledCount([a, b], 1)).toBe(1);
    await wait(GRACE_MS * 3);
    expect([a.settled.length, b.settled.length]).toEqual([1, 0]);
    expect(a.settled[0]).toMatchObject({ outcome: 'completed' });
  });

  it('refuses a forged or altered handoff (another key, a changed reservation): counted unmatched, the fallback settles', async () => {
    const { replica } = deployment();
    const a = replica('a');
    const forger = replica('b', 'another-deployment-secret-of-32-chars!!');
    const decider = a.factory.open({ observedMetering: true });
    const handed = metadataOf(await handOver(decider));
    const [version, payload, mac] = handed.handoff!.split('.');
    const altered = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as { decision: { context: { team: string } } };
    altered.decision.context.team = 'someone-else';
    for (const handoff of [`${version}.${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${mac}`, handed.handoff!]) {
      const metering = forger.factory.open();
      await meterStream(metering, { ...handed, handoff });
      metering.close();
    }
    expect(forger.refused).toEqual([handed.exchange_id, handed.exchange_id]);
    expect(forger.unmatched).toEqual([handed.exchange_id, handed.exchange_id]);
    decider.close();
    expect(await settledCount([a, forger], 1)).toBe(1);
    expect(a.settled).toHaveLength(1);
  });

  it('settles through the fallback, once, when the metering replica dies mid-stream (its claim lapses)', async () => {
    const { replica } = deployment();
    const a = replica('a');
    // A replica that claims, then dies: it never extends its claim nor ends the stream.
    const dying = replica('b', SECRET, { setRepeat: () => undefined, clearRepeat: () => undefined });
    const decider = a.factory.open({ observedMetering: true });
    const handed = metadataOf(await handOver(decider));
    const metering = dying.factory.open();
    await meterStream(metering, handed, SSE.slice(0, 100), false);
    await wait(20);
    decider.close();
    // Within the claim's lifetime the fallback waits for the metering replica.
    await wait(GRACE_MS + 30);
    expect(a.settled).toHaveLength(0);
    expect(await settledCount([a, dying], 1, 3_000)).toBe(1);
    expect(a.settled[0]).toMatchObject({ outcome: 'interrupted', decision: { id: handed.exchange_id } });
    expect(dying.settled).toHaveLength(0);
  });
});

describe('the handoff seal (exchange-handoff.ts)', () => {
  const exchange = { decision: { id: 'd-1', result: 'ALLOWED', context: { team: 't' } } as unknown as Decision, startedAtMs: 1_000, headers: { ':path': '/v1/messages', authorization: 'Bearer sk-x' } };

  it('opens what it sealed, for its own exchange id, within its age, keeping only the listed headers', () => {
    const handoff = createExchangeHandoff({ secret: SECRET, clock: () => 2_000, maxAgeMs: 5_000 });
    const sealed = handoff.seal(exchange)!;
    const opened = handoff.open(sealed, 'd-1');
    expect(opened).toMatchObject({ ok: true, exchange: { decision: { id: 'd-1', context: { team: 't' } }, startedAtMs: 1_000, headers: { ':path': '/v1/messages' } } });
    expect(opened.ok && opened.exchange.headers.authorization).toBeUndefined();
    expect(handoff.open(sealed, 'd-2')).toEqual({ ok: false, reason: 'mismatched' });
    expect(createExchangeHandoff({ secret: SECRET, clock: () => 10_000, maxAgeMs: 5_000 }).open(sealed, 'd-1')).toEqual({ ok: false, reason: 'expired' });
    expect(handoff.open(`${sealed}.x`, 'd-1')).toEqual({ ok: false, reason: 'malformed' });
    expect(handoff.open(sealed.slice(0, -2), 'd-1')).toEqual({ ok: false, reason: 'forged' });
  });

  it('seals nothing past its size bound, nor before its key is known (the exchange stays in-process)', () => {
    expect(createExchangeHandoff({ secret: SECRET, clock: () => 0, maxAgeMs: 5_000, maxBytes: 64 }).seal(exchange)).toBeUndefined();
    let key: string | undefined;
    const lazy = createExchangeHandoff({ secret: () => key, clock: () => 2_000, maxAgeMs: 5_000 });
    expect(lazy.seal(exchange)).toBeUndefined();
    expect(lazy.open('v1.a.b', 'd-1')).toEqual({ ok: false, reason: 'unkeyed' });
    key = SECRET;
    expect(lazy.open(lazy.seal(exchange)!, 'd-1').ok).toBe(true);
  });
});

describe('GENOPS_METERING_HANDOFF_SECRET', () => {
  it('refuses a short key (every replica must share a strong one), takes a long one, and defaults to the key kept in Redis', async () => {
    const { loadSettings } = await import('../../src/settings/settings.js');
    expect(() => loadSettings([], { GENOPS_METERING_HANDOFF_SECRET: 'short' })).toThrow(/at least 32 characters/);
    expect(loadSettings([], { GENOPS_METERING_HANDOFF_SECRET: SECRET }).meteringHandoffSecret).toBe(SECRET);
    expect(loadSettings([], {}).meteringHandoffSecret).toBeUndefined();
  });
});

describe('x-genops-metering: streams (Istio, Helm: no route config writes client headers from metadata)', () => {
  it('hands event streams over, and still answers a plain request\'s response headers with its client headers', async () => {
    const { replica } = deployment();
    const a = replica('a');
    const plain = a.factory.open({ observedMetering: 'streams' });
    const reply = await plain.handle({ request_headers: { headers: headerMap({ ':method': 'GET', ':path': '/v1/models', ...CONTEXT }), end_of_stream: true } });
    expect(reply?.mode_override).toMatchObject({ response_header_mode: 'SEND' });
    expect(reply?.dynamic_metadata).toBeUndefined();
    const headersReply = await plain.handle({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    const set = (headersReply as { response_headers: { response: { header_mutation: { set_headers: { header: { key: string } }[] } } } }).response_headers.response.header_mutation.set_headers.map((option) => option.header.key);
    expect(set).toContain('x-genops-decision-id');
    plain.close();

    const streamed = a.factory.open({ observedMetering: 'streams' });
    const handed = await handOver(streamed);
    expect(handed.mode_override).toMatchObject({ response_body_mode: 'NONE' });
    expect(metadataOf(handed).exchange_id).toMatch(/-decision-\d+$/);
    const metering = a.factory.open();
    await meterStream(metering, metadataOf(handed));
    metering.close();
    streamed.close();
    expect(await settledCount([a], 1)).toBe(1);
    expect(a.settled.map((exchange) => exchange.outcome)).toEqual(['completed']);
  });
});
