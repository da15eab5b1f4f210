/**
 * The forward-auth adapter gives the same answers as the gRPC adapters: same
 * decision, same upstream and client headers, same JSON denial bodies.
 */
import { describe, expect, it } from 'vitest';
import { toCheckResponse } from '../../src/envoy/authz-adapter.js';
import { createForwardAuthAdapter, toForwardAuthResponse, type ForwardAuthResponse } from '../../src/envoy/forward-auth-adapter.js';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { Decision } from '../../src/governance/decision.js';
import type { DecisionInput } from '../../src/governance/decision-engine.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile, loadPolicyText } from '../../src/policy/policy-store.js';
import type { CompiledPolicy } from '../../src/policy/compiled-policy.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { readFileSync } from 'node:fs';

const defaultPolicy = loadPolicyFile(DEFAULT_POLICY_PATH);

const base = { id: '0b6c1d2e-0000-4000-8000-000000000000', dryRun: false, principal: undefined, policyName: 'default' } as const;
const allowed: Decision = { ...base, result: 'ALLOWED', reasonCode: undefined, message: 'allowed', httpStatus: 200, route: 'claude-opus', context: { team: 'ml-platform', customerId: 'acme', project: 'bot', customerTier: 'premium' }, rateLimit: { name: 'per-customer', quota: 100, windowSeconds: 60, remaining: 99, resetSeconds: 1 } };
const limited: Decision = { ...base, result: 'RATE_LIMITED', reasonCode: 'RATE_LIMITED', message: 'rate limit per-customer exceeded', httpStatus: 429, route: undefined, context: { team: 'ml-platform', customerId: 'acme' }, rateLimit: { name: 'per-customer', quota: 100, windowSeconds: 60, remaining: 0, resetSeconds: 42, retryAfterSeconds: 1 } };
const forbidden: Decision = { ...base, result: 'BLOCKED', reasonCode: 'x_team_not_allowed', message: 'team marketing — not allowed', httpStatus: 403, route: undefined, context: { team: 'marketing' } };

const headerMap = (response: ForwardAuthResponse) => Object.fromEntries(response.headers);

describe('forward-auth adapter', () => {
  it('allows with exactly the headers ext_authz sets upstream and on the response', () => {
    const check = toCheckResponse(allowed);
    const answer = toForwardAuthResponse(allowed, 'native');
    expect(answer.status).toBe(200);
    const expected = Object.fromEntries([...(check.ok_response?.response_headers_to_add ?? []), ...(check.ok_response?.headers ?? [])].map((option) => [option.header?.key, option.header?.value]));
    expect(headerMap(answer)).toEqual(expected);
  });

  it.each([limited, forbidden])('denies $reasonCode with the body and headers of the ext_authz denial', (decision) => {
    const check = toCheckResponse(decision);
    const answer = toForwardAuthResponse(decision, 'native');
    expect(answer.status).toBe(decision.httpStatus);
    expect(answer.body).toBe(check.denied_response?.body);
    expect(headerMap(answer)).toEqual(Object.fromEntries((check.denied_response?.headers ?? []).map((option) => [option.header?.key, option.header?.value])));
  });

  it('answers nginx with 403 and the real status and body in ASCII-safe headers', () => {
    const answer = toForwardAuthResponse(forbidden, 'nginx');
    expect(answer.status).toBe(403);
    const headers = headerMap(answer);
    expect(headers['x-genops-status']).toBe('403');
    expect(headers['x-genops-denial']).toMatch(/^[\x20-\x7e]+$/);
    expect(JSON.parse(headers['x-genops-denial'] ?? '')).toEqual(JSON.parse(answer.body));
    expect(toForwardAuthResponse(limited, 'nginx').headers).toContainEqual(['x-genops-status', '429']);
  });

  it('tells Envoy to drop a client-sent route when the policy chose none', () => {
    const answer = toForwardAuthResponse({ ...allowed, route: undefined }, 'native');
    expect(headerMap(answer)['x-envoy-auth-headers-to-remove']).toBe('x-genops-route');
    expect(headerMap(toForwardAuthResponse(allowed, 'native'))['x-envoy-auth-headers-to-remove']).toBeUndefined();
  });

  it('reads the original path only from the header the settings name, and reports as forward_auth', () => {
    const inputs: DecisionInput[] = [];
    const services: string[] = [];
    const reporter: DecisionReporter = { report: (service) => void services.push(service) };
    const adapterFor = (uriHeader?: string) => createForwardAuthAdapter({ governor: { evaluate: (input) => (inputs.push(input), allowed) }, reporter, now: () => 0, policy: () => defaultPolicy, uriHeader });
    const adapter = adapterFor();
    const lookup = (headers: Record<string, string>) => (name: string) => headers[name];

    adapter.check({ target: '/forward-auth/nginx', headers: lookup({ 'x-original-uri': '/v1/b' }) });
    // A client can send X-Forwarded-Uri through nginx: it is never read unless the settings name it.
    adapter.check({ target: '/forward-auth', headers: lookup({ 'x-forwarded-uri': '/v1/a?b=c', 'x-original-uri': '/v1/models' }) });
    adapterFor('x-forwarded-uri').check({ target: '/forward-auth', headers: lookup({ 'x-forwarded-uri': '/v1/a?b=c', 'x-original-uri': '/v1/models' }) });
    adapterFor('x-original-url').check({ target: '/forward-auth?ignored=1', headers: lookup({ 'x-original-url': 'https://ai.example.com/v1/c?d=e' }) });
    adapter.check({ target: '/forward-auth/envoy/v1/d?e=f', headers: lookup({}) });
    adapter.check({ target: '/forward-auth/envoy', headers: lookup({}) });
    adapter.check({ target: '/forward-auth', headers: lookup({ 'x-forwarded-uri': '/v1/a' }) });
    adapter.check({ target: '/forward-auth', headers: lookup({ 'x-original-uri': 'v1/relative' }) });

    expect(inputs.map((input) => input.path)).toEqual(['/v1/b', '/v1/models', '/v1/a?b=c', '/v1/c?d=e', '/v1/d?e=f', '/', undefined, 'v1/relative']);
    expect(inputs.map((input) => input.malformed !== undefined)).toEqual([false, false, false, false, false, false, true, true]);
    expect(inputs[6]?.malformed).toMatch(/x-original-uri.*GENOPS_FORWARD_AUTH_URI_HEADER/);
    expect(services).toEqual(Array(8).fill('forward_auth'));
    expect(adapter.check({ target: '/forward-authx', headers: lookup({}) })).toBeUndefined();
    expect(adapter.check({ target: '/', headers: lookup({}) })).toBeUndefined();
  });

  it('classifies by the original method: an unreadable body is refused, an AI API path needs the body where a rule needs it', () => {
    const inputs: DecisionInput[] = [];
    const adapter = createForwardAuthAdapter({ governor: { evaluate: (input) => (inputs.push(input), allowed) }, reporter: { report: () => undefined }, now: () => 0, policy: () => defaultPolicy });
    const lookup = (headers: Record<string, string>) => (name: string) => headers[name];
    adapter.check({ target: '/forward-auth/nginx', headers: lookup({ 'x-original-uri': '/v1/uploads', 'x-original-method': 'POST' }) });
    adapter.check({ target: '/forward-auth/nginx', headers: lookup({ 'x-original-uri': '/v1/uploads', 'x-original-method': 'GET' }) });
    adapter.check({ target: '/forward-auth/nginx', headers: lookup({ 'x-original-uri': '/v1//chat%2Fcompletions', 'x-original-method': 'post' }) });
    // A forged X-Forwarded-Method is not the method header: the auth call's own method (POST here) stands.
    adapter.check({ target: '/forward-auth/nginx', method: 'POST', headers: lookup({ 'x-original-uri': '/v1/uploads', 'x-forwarded-method': 'GET' }) });
    adapter.check({ target: '/forward-auth/envoy/v1/messages', method: 'POST', headers: lookup({}) });
    expect(inputs.map((input) => [input.unknownAiApi !== undefined, input.bodyUnseen?.api])).toEqual([
      [true, undefined],
      [false, undefined],
      [false, 'openai.chat'],
      [true, undefined],
      [false, 'anthropic.messages'],
    ]);
    expect(inputs[0]?.unknownAiApi).toContain('"/v1/uploads"');
  });

  it('checks a model the path names (Gemini, Bedrock, an Azure deployment) and needs the body only for the rest, or for a budget', async () => {
    const budgeted = loadPolicyText(readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace('  rateLimits:', '  budgets:\n    - { name: product-monthly, key: [team], amount: "100", period: monthly, timeZone: UTC, selector: { teams: [product-team] } }\n  rateLimits:'), 'budgeted.yaml');
    const decide = async (policy: CompiledPolicy, path: string, team = 'product-team') => {
      const engine = createDecisionEngine({ policy: () => policy });
      const adapter = createForwardAuthAdapter({ governor: createGovernor({ engine }), reporter: { report: () => undefined }, now: () => 0, policy: () => policy });
      const headers: Record<string, string> = { 'x-genops-team': team, 'x-genops-customer-id': 'acme', 'x-genops-project': 'bot', 'x-original-uri': path, 'x-original-method': 'POST' };
      const answer = await adapter.check({ target: '/forward-auth', headers: (name) => headers[name] })!;
      return answer.status === 200 ? 'ALLOWED' : (JSON.parse(answer.body) as { reason_code: string }).reason_code;
    };
    expect(await decide(defaultPolicy, '/v1beta/models/gemini-2.5-pro:generateContent')).toBe('POLICY_DENY_MODEL');
    expect(await decide(defaultPolicy, `/model/${encodeURIComponent('us.anthropic.claude-haiku-4-5-20251001-v1:0')}/converse`)).toBe('ALLOWED');
    expect(await decide(defaultPolicy, '/model/us.anthropic.claude-opus-4-1-20250805-v1:0/converse')).toBe('POLICY_DENY_MODEL');
    expect(await decide(defaultPolicy, '/openai/deployments/claude-haiku-4-5/chat/completions?api-version=2024-10-21')).toBe('ALLOWED');
    expect(await decide(defaultPolicy, '/model/%3Cscript%3E/converse')).toBe('x_malformed_body');
    expect(await decide(defaultPolicy, '/v1/chat/completions')).toBe('x_body_required');
    expect(await decide(defaultPolicy, '/v1/chat/completions', 'ml-platform')).toBe('ALLOWED');
    expect(await decide(budgeted, `/model/${encodeURIComponent('us.anthropic.claude-haiku-4-5-20251001-v1:0')}/converse`)).toBe('x_ext_proc_required');
    // A token count is free: no budget needs its response.
    expect(await decide(budgeted, `/model/${encodeURIComponent('anthropic.claude-haiku-4-5-20251001-v1:0')}/count-tokens`)).toBe('ALLOWED');
    expect(await decide(budgeted, '/v1/chat/completions', 'ml-platform')).toBe('ALLOWED');
  });
});
