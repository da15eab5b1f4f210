/**
 * Observed metering: the deciding ext_proc stream hands an allowed AI exchange whose answer is an
 * event stream to the metering stream (a second filter in observability_mode) by the exchange id
 * its response-headers reply emits as dynamic metadata; JSON answers are read by the deciding
 * stream. Every ordering of the two streams settles the exchange exactly once.
 */
import { describe, expect, it } from 'vitest';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/envoy/envoy-messages.js';
import { createExtProcSessionFactory, METERING_NAMESPACE, type ExtProcSession } from '../../src/envoy/ext-proc-session.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createRateLimiter } from '../../src/governance/rate-limiting.js';
import type { FinishedExchange } from '../../src/governance/usage-accounting.js';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile } from '../../src/policy/policy-store.js';

const GRACE_MS = 40;
const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
const reporter: DecisionReporter = { report: () => undefined };
const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });
const CONTEXT = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' };
const USAGE_JSON = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', model: 'claude-sonnet-4-5', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } });

function setup() {
  let counter = 0;
  const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => `decision-${++counter}` });
  const store = createMemoryRateLimitStore({ clock: () => 1_700_000_000_000 });
  const rateLimiter = createRateLimiter({ store, policy: () => policy, observer: { limitChecked: () => undefined, backendFailed: () => undefined } });
  const settled: FinishedExchange[] = [];
  const unmatched: string[] = [];
  const factory = createExtProcSessionFactory({
    governor: createGovernor({ engine, rateLimiter }),
    reporter,
    policy: () => policy,
    now: () => 0,
    settle: (exchange) => settled.push(exchange),
    meteringGraceMs: GRACE_MS,
    unmatchedMetering: (id) => unmatched.push(id),
  });
  return { factory, settled, unmatched };
}

/** The deciding stream of an AI request up to its decision; returns the body reply. */
async function decide(session: ExtProcSession, headers: Record<string, string> = CONTEXT): Promise<ProcessingResponse> {
  const first = await session.handle({ request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', ...headers }) } });
  if (first && 'immediate_response' in first) return first;
  expect(first?.mode_override).toMatchObject({ response_header_mode: 'SEND', response_body_mode: 'STREAMED', request_body_mode: 'BUFFERED' });
  const body = JSON.stringify({ model: 'claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'Hello' }] });
  return (await session.handle({ request_body: { body: Buffer.from(body), end_of_stream: true } }))!;
}

/** The deciding stream through its decision and the response headers of an event stream: returns that reply (the hand-over). */
async function handOver(session: ExtProcSession, status = '200', contentType = 'text/event-stream; charset=utf-8'): Promise<ProcessingResponse> {
  const decided = await decide(session);
  expect(decided).toHaveProperty('request_body');
  // x-envoy-upstream-service-time: Envoy's router marks what came from the upstream (not a local reply).
  return (await session.handle({ response_headers: { headers: headerMap({ ':status': status, 'content-type': contentType, 'x-envoy-upstream-service-time': '3' }) } }))!;
}

function metadataOf(reply: ProcessingResponse): Record<string, string | undefined> {
  const fields = reply.dynamic_metadata?.fields?.[METERING_NAMESPACE]?.structValue?.fields ?? {};
  return Object.fromEntries(Object.entries(fields).map(([key, value]) => [key, value?.stringValue]));
}

const meter = (id: string, message: ProcessingRequest): ProcessingRequest => ({
  ...message,
  observability_mode: true,
  metadata_context: { filter_metadata: { [METERING_NAMESPACE]: { fields: { exchange_id: { stringValue: id } } } } },
});
const responseHeaders = (id: string, status = '200') => meter(id, { response_headers: { headers: headerMap({ ':status': status, 'content-type': 'text/event-stream' }) } });
const SSE = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'claude-sonnet-4-5', choices: [{ index: 0, delta: { content: 'Hi' } }] })}\n\ndata: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'claude-sonnet-4-5', choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })}\n\ndata: [DONE]\n\n`;
const responseBody = (id: string, body: string, end: boolean) => meter(id, { response_body: { body: Buffer.from(body), end_of_stream: end } });
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('observed metering: the exchange handed from the deciding stream to the metering stream', () => {
  it('hands an event stream over in the response-headers reply (client headers set, body not sent here), and the metering stream settles its usage once', async () => {
    const { factory, settled } = setup();
    const decider = factory.open({ observedMetering: true });
    const reply = await handOver(decider);
    expect(reply.mode_override).toMatchObject({ response_body_mode: 'NONE' });
    const set = (reply as { response_headers: { response: { header_mutation: { set_headers: { header: { key: string } }[] } } } }).response_headers.response.header_mutation.set_headers.map((option) => option.header.key);
    expect(set).toEqual(expect.arrayContaining(['x-genops-decision-id', 'ratelimit']));
    const metadata = metadataOf(reply);
    expect(metadata.exchange_id).toMatch(/^decision-/);

    const metering = factory.open();
    expect(await metering.handle(responseHeaders(metadata.exchange_id!))).toBeUndefined();
    expect(metering.done).toBe(false);
    await metering.handle(responseBody(metadata.exchange_id!, SSE.slice(0, 90), false));
    await metering.handle(responseBody(metadata.exchange_id!, SSE.slice(90), true));
    expect(metering.done).toBe(true);
    expect(settled).toHaveLength(1);
    expect(settled[0]).toMatchObject({ outcome: 'completed', upstreamStatus: 200 });
    expect(settled[0]!.report?.usage).toMatchObject({ input: 10, output: 5 });

    metering.close();
    decider.close();
    await wait(GRACE_MS * 2);
    expect(settled).toHaveLength(1);
  });

  it('settles once when the deciding stream ends before the metering stream starts (within the grace period)', async () => {
    const { factory, settled } = setup();
    const decider = factory.open({ observedMetering: true });
    const id = metadataOf(await handOver(decider)).exchange_id!;
    decider.close();
    await wait(GRACE_MS / 4);
    const metering = factory.open();
    await metering.handle(responseHeaders(id));
    await wait(GRACE_MS * 2); // past the grace period: the claim stopped the timer
    expect(settled).toHaveLength(0);
    await metering.handle(responseBody(id, SSE, true));
    metering.close();
    expect(settled.map((exchange) => exchange.outcome)).toEqual(['completed']);
  });

  it('settles once, estimated (interrupted), when no metering stream comes, and a late one is counted as unmatched, not settled again', async () => {
    const { factory, settled, unmatched } = setup();
    const decider = factory.open({ observedMetering: true });
    const id = metadataOf(await handOver(decider)).exchange_id!;
    decider.close();
    decider.close();
    expect(settled).toHaveLength(0);
    await wait(GRACE_MS * 3);
    expect(settled.map((exchange) => exchange.outcome)).toEqual(['interrupted']);
    const late = factory.open();
    await late.handle(responseHeaders(id));
    await late.handle(responseBody(id, SSE, true));
    late.close();
    expect(settled).toHaveLength(1);
    expect(unmatched).toEqual([id]);
  });

  it('settles interrupted once when the metering stream is reset mid-response, whatever the deciding stream does after', async () => {
    const { factory, settled } = setup();
    const decider = factory.open({ observedMetering: true });
    const id = metadataOf(await handOver(decider)).exchange_id!;
    const metering = factory.open();
    await metering.handle(responseHeaders(id));
    await metering.handle(responseBody(id, SSE.slice(0, 20), false));
    metering.close();
    decider.close();
    await wait(GRACE_MS * 2);
    expect(settled.map((exchange) => exchange.outcome)).toEqual(['interrupted']);
  });

  it('reads a JSON answer and an error on the deciding stream itself (nothing handed over), once', async () => {
    const { factory, settled, unmatched } = setup();
    for (const [status, contentType, body] of [['200', 'application/json', USAGE_JSON], ['503', 'text/event-stream', 'upstream connect error']] as const) {
      const decider = factory.open({ observedMetering: true });
      const reply = await handOver(decider, status, contentType);
      expect(reply.mode_override).toBeUndefined(); // the body stays STREAMED here
      expect(metadataOf(reply).exchange_id).toBeUndefined();
      await decider.handle({ response_body: { body: Buffer.from(body), end_of_stream: true } });
      decider.close();
    }
    await wait(GRACE_MS * 2);
    expect(settled.map((exchange) => exchange.outcome)).toEqual(['completed', 'upstream_error']);
    expect(settled[0]!.report?.usage).toMatchObject({ input: 10, output: 5 });
    expect(unmatched).toEqual([]);
  });

  it('ignores a metering stream with no or a forged exchange id (counted), and denials hand nothing over', async () => {
    const { factory, settled, unmatched } = setup();
    const decider = factory.open({ observedMetering: true });
    const denied = await decide(decider, { ...CONTEXT, 'x-genops-team': 'sales' });
    expect('immediate_response' in denied).toBe(true);
    decider.close();
    const forged = factory.open();
    await forged.handle(responseHeaders('decision-999'));
    await forged.handle(responseBody('decision-999', SSE, true));
    forged.close();
    const anonymous = factory.open();
    await anonymous.handle({ observability_mode: true, response_headers: { headers: headerMap({ ':status': '200' }), end_of_stream: true } });
    expect(anonymous.done).toBe(true);
    anonymous.close();
    await wait(GRACE_MS * 2);
    expect(settled).toEqual([]);
    expect(unmatched).toEqual(['decision-999']);
  });

  it('decides a request that is not an AI call on its headers and carries its client headers as metadata, with nothing to meter', async () => {
    const { factory, settled } = setup();
    const decider = factory.open({ observedMetering: true });
    const reply = (await decider.handle({ request_headers: { headers: headerMap({ ':method': 'GET', ':path': '/v1/models', ...CONTEXT }), end_of_stream: true } }))!;
    expect(reply.mode_override).toMatchObject({ response_header_mode: 'SKIP', request_body_mode: 'NONE', response_body_mode: 'NONE' });
    const metadata = metadataOf(reply);
    expect(metadata['x-genops-decision-id']).toMatch(/^decision-/);
    expect(metadata.exchange_id).toBeUndefined();
    decider.close();
    await wait(GRACE_MS * 2);
    expect(settled).toEqual([]);
  });
});
