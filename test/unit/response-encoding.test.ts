import { describe, expect, it } from 'vitest';
import { createAuthzAdapter } from '../../src/envoy/authz-adapter.js';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { CheckResponse, ProcessingRequest, ProcessingResponse } from '../../src/envoy/envoy-messages.js';
import { createExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { encodeCheckResponse, encodeProcessingResponse } from '../../src/envoy/response-encoding.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createRateLimiter } from '../../src/governance/rate-limiting.js';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile } from '../../src/policy/policy-store.js';
import { loadServiceDefinitions } from '../../src/server/proto-definitions.js';

// The generic proto-loader serializers the hand-written encoder replaces.
const definitions = loadServiceDefinitions();
const genericCheck = definitions.authorization.Check!.responseSerialize as (response: CheckResponse) => Buffer;
const genericProcess = definitions.externalProcessor.Process!.responseSerialize as (response: ProcessingResponse) => Buffer;
const decodeCheck = definitions.authorization.Check!.responseDeserialize;
const decodeProcess = definitions.externalProcessor.Process!.responseDeserialize;

function governor() {
  const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
  let counter = 0;
  const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => `decision-${++counter}-ünïcødé-✓` });
  const store = createMemoryRateLimitStore({ clock: () => 1_700_000_000_000 });
  const rateLimiter = createRateLimiter({ store, policy: () => policy, observer: { limitChecked: () => undefined, backendFailed: () => undefined } });
  return createGovernor({ engine, rateLimiter });
}
const reporter: DecisionReporter = { report: () => undefined };
const base = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' };

/** Headers that lead to each kind of decision: allow (with and without tier), each denial. */
const cases: Record<string, Record<string, string>> = {
  'allowed, premium': { ...base, 'x-genops-customer-tier': 'premium', 'x-genops-model': 'claude-opus', 'x-genops-cost-center': 'cc-1', 'x-genops-environment': 'prod', 'x-genops-feature': 'chat' },
  'allowed, no tier': base,
  'missing context': { 'x-genops-team': 'ml-platform' },
  'invalid context': { ...base, 'x-genops-customer-id': 'bad id!' },
  'team not allowed': { ...base, 'x-genops-team': 'sales' },
  'model denied': { ...base, 'x-genops-team': 'product-team', 'x-genops-model': 'claude-opus' },
  'long values': { ...base, 'x-genops-project': 'p'.repeat(128), 'x-genops-feature': 'f'.repeat(128) },
};

/** A copy of `message` with every header raw_value given as text turned into its UTF-8 bytes. */
function withByteHeaderValues<T>(message: T): T {
  if (Array.isArray(message)) return message.map(withByteHeaderValues) as T;
  if (message === null || typeof message !== 'object' || Buffer.isBuffer(message) || message instanceof Uint8Array) return message;
  return Object.fromEntries(Object.entries(message).map(([key, value]) => [key, key === 'raw_value' && typeof value === 'string' ? Buffer.from(value, 'utf8') : withByteHeaderValues(value)])) as T;
}

describe('hand-written response encoding', () => {
  it('encodes every CheckResponse the ext_authz adapter makes exactly as proto-loader does', async () => {
    const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
    const adapter = createAuthzAdapter({ governor: governor(), reporter, now: () => 0, policy: () => policy });
    for (const [name, headers] of Object.entries(cases)) {
      const response = await adapter.check({ attributes: { request: { http: { path: '/v1/chat/completions', headers } } } });
      expect(encodeCheckResponse(response).toString('hex'), name).toBe(genericCheck(response).toString('hex'));
      expect(decodeCheck(encodeCheckResponse(response)), name).toEqual(decodeCheck(genericCheck(response)));
    }
  });

  it('encodes rate-limited denials (RateLimit headers, Retry-After) exactly as proto-loader does', async () => {
    const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
    const adapter = createAuthzAdapter({ governor: governor(), reporter, now: () => 0, policy: () => policy });
    let response: CheckResponse | undefined;
    for (let index = 0; index < 101; index++) response = await adapter.check({ attributes: { request: { http: { path: '/v1/chat/completions', headers: base } } } });
    expect(response!.status.code).not.toBe(0);
    expect(encodeCheckResponse(response!).equals(genericCheck(response!))).toBe(true);
  });

  it('encodes every ProcessingResponse the ext_proc session makes exactly as proto-loader does', async () => {
    const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
    const factory = createExtProcSessionFactory({ governor: governor(), reporter, now: () => 0, policy: () => policy });
    const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });
    for (const [name, headers, observedMetering] of Object.entries(cases).flatMap(([name, headers]) => [[name, headers, false], [`${name}, observed metering`, headers, true]] as const)) {
      // Observed metering: the decision replies carry dynamic metadata (a Struct of Structs).
      const session = factory.open({ observedMetering });
      // A streamed chat request without include_usage: the body reply carries a body mutation too.
      const body = JSON.stringify({ model: headers['x-genops-model'] ?? 'claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'Hi ✓' }] });
      const requests: ProcessingRequest[] = [
        { request_headers: { headers: headerMap({ ':path': '/v1/chat/completions', ':method': 'POST', ...headers }) } },
        { request_body: { body: Buffer.from(body), end_of_stream: true } },
        { response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) } },
        { response_body: { body: Buffer.from('{}'), end_of_stream: true } },
        { request_trailers: {} },
        { response_trailers: {} },
      ];
      for (const request of requests) {
        const reply = await session.handle(request);
        if (!reply) continue;
        const label = `${name}: ${Object.keys(reply).join('+')}`;
        // The session gives header values as text (no Buffer per header); proto-loader wants bytes: the same message.
        const asBytes = withByteHeaderValues(reply);
        expect(encodeProcessingResponse(reply).toString('hex'), label).toBe(genericProcess(asBytes).toString('hex'));
        expect(decodeProcess(encodeProcessingResponse(reply)), label).toEqual(decodeProcess(genericProcess(asBytes)));
      }
    }
  });

  it('refuses a ProcessingResponse with more than one member of its oneof', () => {
    const both = { request_headers: { response: {} }, response_headers: { response: {} } } as unknown as ProcessingResponse;
    expect(() => encodeProcessingResponse(both)).toThrow(/exactly one of/);
  });
});
