/**
 * The ext_proc session in the one-round-trip mode (the route's request_body_mode
 * FULL_DUPLEX_STREAMED, which Envoy reports in protocol_config): an AI request's headers are
 * answered only once its body is complete, with the body sent back in the same breath; every other
 * body is sent back chunk by chunk. Replies are encoded byte for byte as proto-loader would.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/envoy/envoy-messages.js';
import { createExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { encodeProcessingResponse } from '../../src/envoy/response-encoding.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createRateLimiter } from '../../src/governance/rate-limiting.js';
import type { FinishedExchange } from '../../src/governance/usage-accounting.js';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { loadServiceDefinitions } from '../../src/server/proto-definitions.js';

// The default policy with /v1/files governed on headers only: a body there is neither read nor refused.
const policy = loadPolicyText(readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace(/^spec:\n/m, 'spec:\n  usage:\n    headersOnly: [{ prefix: /v1/files }]\n'), 'test policy');
const reporter: DecisionReporter = { report: () => undefined };
const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });
const CONTEXT = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' };
/** What Envoy reports on the first message of a stream on the one-round-trip route (protobufjs decodes enums as numbers). */
const FULL_DUPLEX = { request_body_mode: 4, response_body_mode: 0 };

function setup(limits: { maxHeldRequestBytes?: number } = {}) {
  let counter = 0;
  const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => `decision-${++counter}` });
  const store = createMemoryRateLimitStore({ clock: () => 1_700_000_000_000 });
  const rateLimiter = createRateLimiter({ store, policy: () => policy, observer: { limitChecked: () => undefined, backendFailed: () => undefined } });
  const settled: FinishedExchange[] = [];
  const factory = createExtProcSessionFactory({ governor: createGovernor({ engine, rateLimiter }), reporter, policy: () => policy, now: () => 0, settle: (exchange) => settled.push(exchange), ...limits });
  return { session: factory.open({ observedMetering: true }), factory, settled };
}

const headers = (extra: Record<string, string> = {}, endOfStream = false): ProcessingRequest => ({
  request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', ...CONTEXT, ...extra }), end_of_stream: endOfStream },
  protocol_config: FULL_DUPLEX,
});
const chunk = (text: string | Buffer, endOfStream: boolean): ProcessingRequest => ({ request_body: { body: Buffer.isBuffer(text) ? text : Buffer.from(text), end_of_stream: endOfStream } });
const list = (replies: unknown): ProcessingResponse[] => (Array.isArray(replies) ? (replies as ProcessingResponse[]) : replies === undefined ? [] : [replies as ProcessingResponse]);
const streamedBody = (reply: ProcessingResponse | undefined) => (reply && 'request_body' in reply ? reply.request_body.response.body_mutation?.streamed_response : undefined);

const CHAT = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] });

describe('ext_proc session, one round trip (FULL_DUPLEX_STREAMED request body)', () => {
  it('holds an AI request\'s headers reply until the last chunk, then sends it and the whole body together', async () => {
    const { session, settled } = setup();
    expect(list(await session.replies(headers()))).toEqual([]);
    expect(list(await session.replies(chunk(CHAT.slice(0, 10), false)))).toEqual([]);
    expect(list(await session.replies(chunk(CHAT.slice(10), false)))).toEqual([]);
    const [decision, body, ...more] = list(await session.replies(chunk('', true)));
    expect(more).toEqual([]);
    expect(decision).toMatchObject({
      request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: expect.arrayContaining([expect.objectContaining({ header: expect.objectContaining({ key: 'x-genops-decision-id' }) })]) } } },
      mode_override: { request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND', response_header_mode: 'SEND', response_body_mode: 'STREAMED' },
    });
    // No content-length: Envoy removes it in this mode (and would drop a mutation setting it).
    const set = 'request_headers' in decision! ? decision.request_headers.response.header_mutation?.set_headers ?? [] : [];
    expect(set.map((option) => option.header.key)).not.toContain('content-length');
    expect(streamedBody(body)).toEqual({ body: Buffer.from(CHAT), end_of_stream: true });
    expect(settled).toEqual([]);
    session.close();
    expect(settled).toHaveLength(1);
    expect(settled[0]?.outcome).toBe('no_response');
  });

  it('sends back the rewritten body (include_usage turned on for a streamed chat request)', async () => {
    const { session } = setup();
    await session.replies(headers());
    const streamed = JSON.stringify({ model: 'claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'Hello' }] });
    const [, body] = list(await session.replies(chunk(streamed, true)));
    expect(JSON.parse(streamedBody(body)!.body.toString('utf8'))).toEqual({ ...JSON.parse(streamed), stream_options: { include_usage: true } });
  });

  it('refuses a body model the customer may not use with an immediate response alone', async () => {
    const { session, settled } = setup();
    await session.replies(headers({ 'x-genops-customer-tier': 'basic' }));
    const replies = list(await session.replies(chunk(JSON.stringify({ model: 'claude-opus-4-1-20250805', messages: [] }), true)));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ immediate_response: { status: { code: 403 } } });
    session.close();
    expect(settled).toEqual([]);
  });

  it('refuses a body past the policy limit as soon as the bytes pass it, without waiting for its end', async () => {
    const { session } = setup();
    await session.replies(headers());
    const piece = Buffer.alloc(1024 * 1024, 0x20);
    const replies: ProcessingResponse[] = [];
    for (let index = 0; index < 5 && replies.length === 0; index++) replies.push(...list(await session.replies(chunk(piece, false))));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ immediate_response: { status: { code: 413 } } });
  });

  it('bounds the bodies held over all streams: the largest is let go, refused 503 on its next message, and the others are decided', async () => {
    const { session: big, factory, settled } = setup({ maxHeldRequestBytes: 1024 * 1024 });
    const small = factory.open({ observedMetering: true });
    await big.replies(headers());
    await small.replies(headers());
    expect(list(await big.replies(chunk(Buffer.alloc(900 * 1024, 0x20), false)))).toEqual([]);
    // The small one's bytes pass the bound: the big one is let go, not the newcomer.
    expect(list(await small.replies(chunk(Buffer.from(CHAT.slice(0, 10)), false)))).toEqual([]);
    expect(list(await small.replies(chunk(Buffer.alloc(200 * 1024, 0x20), false)))).toEqual([]);
    const refused = list(await big.replies(chunk(CHAT, true)));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ immediate_response: { status: { code: 503 }, details: 'genops_x_request_bodies_full' } });
    const reply = refused[0] && 'immediate_response' in refused[0] ? refused[0].immediate_response : undefined;
    expect(JSON.parse(reply!.body!.toString('utf8'))).toMatchObject({ reason_code: 'x_request_bodies_full' });
    expect(encodeProcessingResponse(refused[0]!).length).toBeGreaterThan(reply!.body!.length);
    big.close();
    small.close();
    // Nothing was decided for the refused one, so nothing was reserved or settled.
    expect(settled).toEqual([]);
  });

  it('ends the body at trailers: headers reply, the body (not the end of the stream), and the trailers reply', async () => {
    const { session } = setup();
    await session.replies(headers());
    expect(list(await session.replies(chunk(CHAT, false)))).toEqual([]);
    const replies = list(await session.replies({ request_trailers: { trailers: headerMap({ 'x-trailer': '1' }) } }));
    expect(replies.map((reply) => Object.keys(reply).filter((key) => key !== 'mode_override')[0])).toEqual(['request_headers', 'request_body', 'request_trailers']);
    expect(streamedBody(replies[1])).toEqual({ body: Buffer.from(CHAT), end_of_stream: false });
  });

  it('decides a request that is not an AI call on its headers, then sends its body back chunk by chunk', async () => {
    const { session } = setup();
    const [decision, ...more] = list(await session.replies({ ...headers(), request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/files', ...CONTEXT }), end_of_stream: false } }));
    expect(more).toEqual([]);
    expect(decision).toMatchObject({ request_headers: { response: { clear_route_cache: true } }, mode_override: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_header_mode: 'SKIP' } });
    expect(streamedBody(list(await session.replies(chunk('abc', false)))[0])).toEqual({ body: Buffer.from('abc'), end_of_stream: false });
    expect(streamedBody(list(await session.replies(chunk('def', true)))[0])).toEqual({ body: Buffer.from('def'), end_of_stream: true });
  });

  it('decides a bodyless request on its headers in one reply, as in two round trips', async () => {
    const { session } = setup();
    const replies = list(await session.replies({ ...headers({}, true), request_headers: { headers: headerMap({ ':method': 'GET', ':path': '/v1/models', ...CONTEXT }), end_of_stream: true } }));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ request_headers: { response: { clear_route_cache: true } } });
  });

  it('keeps the one-reply handle() for the two-round-trip protocol and refuses to squeeze two replies into it', async () => {
    const { session } = setup();
    expect(await session.handle(headers())).toBeUndefined();
    await expect(async () => session.handle(chunk(CHAT, true))).rejects.toThrow(/several replies/);
  });

  it('encodes streamed_response exactly as proto-loader does', () => {
    const generic = loadServiceDefinitions().externalProcessor.Process!.responseSerialize as (response: ProcessingResponse) => Buffer;
    for (const endOfStream of [true, false]) {
      const reply: ProcessingResponse = { request_body: { response: { body_mutation: { streamed_response: { body: Buffer.from(CHAT), end_of_stream: endOfStream } } } } };
      expect(encodeProcessingResponse(reply).toString('hex')).toBe(generic(reply).toString('hex'));
    }
  });
});
