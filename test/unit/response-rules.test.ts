import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createDecisionEngine, type DecisionInput } from '../../src/governance/decision-engine.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { parseAiRequestBody } from '../../src/usage/request-body.js';
import type { AiApi } from '../../src/usage/ai-api.js';

/**
 * Budgets and token limits need the response (reserve then settle; charge the usage): behind
 * ext_authz (body, no response) and forward auth (neither) an AI call they select is refused with
 * x_ext_proc_required, or warned about when the rules are dry-run / shadow.
 */
/** Top-level spec entries go before rateLimits; a token limit (a line starting "    - ") joins the default per-customer limit. */
function policyWith(rules: string) {
  const limits = rules.split('\n').filter((line) => line.startsWith('    - { name: tokens')).join('\n');
  const rest = rules.split('\n').filter((line) => !line.startsWith('    - { name: tokens')).join('\n');
  return loadPolicyText(readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace('  rateLimits:\n', `${rest}  rateLimits:\n${limits ? `${limits}\n` : ''}`), 'rules.yaml');
}

const BUDGET = (extra = '') => `  budgets:\n    - { name: team-monthly, key: [team], amount: "100", period: monthly, selector: { teams: [ml-platform] }${extra} }\n`;
const TOKEN_LIMIT = (extra = '') => `    - { name: tokens-per-team, key: [team], unit: tokens, capacity: 1000, refill: { amount: 1000, every: 60s }${extra} }\n`;
const headers: Record<string, string> = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'bot' };

function aiInput(api: AiApi, body: unknown, extra: Partial<DecisionInput> = {}, pathModel?: string): DecisionInput {
  const parsed = parseAiRequestBody(api, Buffer.from(JSON.stringify(body)), pathModel ? { pathModel } : undefined);
  if (!parsed.ok) throw new Error(parsed.problem.message);
  return { headers: (name) => headers[name], path: '/v1/chat/completions', ai: { request: parsed.request }, ...extra };
}
const chat = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 50 };

function decide(rules: string, input: DecisionInput) {
  const policy = policyWith(rules);
  return createDecisionEngine({ policy: () => policy }).decide(input);
}

describe('rules that need the response, behind adapters that never see it', () => {
  it('ext_authz: an AI call an enforced budget selects is refused 403 x_ext_proc_required naming ext-proc.yaml; ext_proc (settles) passes on', () => {
    const refused = decide(BUDGET(), aiInput('openai.chat', chat));
    expect(refused).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_ext_proc_required', httpStatus: 403 });
    expect(refused.message).toContain('ext_authz cannot see the response');
    expect(refused.message).toContain('budget team-monthly');
    expect(refused.message).toContain('deploy/envoy/ext-proc.yaml');
    expect(decide(BUDGET(), aiInput('openai.chat', chat, { settles: true })).result).toBe('ALLOWED');
  });

  it('an enforced token limit is refused the same (never charged behind ext_authz, it would admit everything)', () => {
    const refused = decide(TOKEN_LIMIT(), aiInput('openai.chat', chat));
    expect(refused).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_ext_proc_required' });
    expect(refused.message).toContain('token limit tokens-per-team');
    // Request limits are counted at admission: they are kept behind every adapter.
    expect(decide('', aiInput('openai.chat', chat)).result).toBe('ALLOWED');
  });

  it('dry-run budgets and shadow token limits warn instead (logged and counted as WARNING x_ext_proc_required)', () => {
    for (const rules of [BUDGET(', mode: dry-run'), TOKEN_LIMIT(', shadow: true')]) {
      const warned = decide(rules, aiInput('openai.chat', chat));
      expect(warned).toMatchObject({ result: 'WARNING', reasonCode: 'x_ext_proc_required', dryRun: true, route: 'claude-sonnet' });
      expect(warned.message).toMatch(/^dry-run: ext_authz cannot see the response/);
    }
  });

  it('a rule that does not select the request, or whose key the request lacks, does not apply', () => {
    const otherTeam = decide(BUDGET(), aiInput('openai.chat', chat, { headers: (name) => ({ ...headers, 'x-genops-team': 'ml-research' })[name] }));
    expect(otherTeam.result).toBe('ALLOWED');
    const byCustomer = `  budgets:\n    - { name: per-feature, key: [feature], amount: "5", period: daily }\n`;
    expect(decide(byCustomer, aiInput('openai.chat', chat)).result).toBe('ALLOWED');
    expect(decide(byCustomer, aiInput('openai.chat', chat, { headers: (name) => ({ ...headers, 'x-genops-feature': 'search' })[name] })).reasonCode).toBe('x_ext_proc_required');
  });

  it('forward auth (no body): a budget that selects by model may select the request whatever its model', () => {
    const byModel = `  budgets:\n    - { name: opus, key: [team], amount: "5", period: daily, selector: { models: [claude-opus*] } }\n`;
    const input: DecisionInput = { headers: (name) => headers[name], path: '/v1/chat/completions', bodyUnseen: { api: 'openai.chat', adapter: 'forward auth' } };
    const refused = decide(byModel, input);
    expect(refused).toMatchObject({ reasonCode: 'x_ext_proc_required' });
    expect(refused.message).toContain('forward auth cannot see the response');
    // The path names a model the selector does not match: the budget is not for it.
    expect(decide(byModel, { ...input, path: '/v1beta/models/gemini-2.5-pro:generateContent', bodyUnseen: { api: 'gemini.generate', adapter: 'forward auth', model: 'gemini-2.5-pro' } }).result).toBe('ALLOWED');
  });

  it('a token count is free: no budget or token limit needs its response, behind any adapter; its model is still checked', () => {
    const count = aiInput('anthropic.count-tokens', { model: 'claude-opus-4-1', messages: [{ role: 'user', content: 'hi' }] }, { path: '/v1/messages/count_tokens' });
    expect(decide(BUDGET() + TOKEN_LIMIT(), count).result).toBe('ALLOWED');
    const product = { ...count, headers: (name: string) => ({ ...headers, 'x-genops-team': 'product-team' })[name] };
    expect(decide(BUDGET(), product)).toMatchObject({ result: 'BLOCKED', reasonCode: 'POLICY_DENY_MODEL' });
  });

  it('a batch: refused behind ext_authz; under spec.usage.batches: allow admitted unreserved and uncharged (as behind ext_proc)', () => {
    const batch = aiInput('anthropic.batches', { requests: [{ custom_id: 'a', params: { model: 'claude-haiku-4-5', max_tokens: 5, messages: [] } }] }, { path: '/v1/messages/batches' });
    expect(decide(BUDGET(), batch).reasonCode).toBe('x_ext_proc_required');
    expect(decide(TOKEN_LIMIT(), batch).reasonCode).toBe('x_ext_proc_required');
    const allowBatches = `  usage: { batches: allow }\n${BUDGET()}${TOKEN_LIMIT()}`;
    expect(decide(allowBatches, batch).result).toBe('ALLOWED');
    expect(decide(allowBatches, { ...batch, settles: true }).result).toBe('ALLOWED');
  });

  it('behind ext_proc too, a call billed later (batch, background response) cannot be charged to a token limit: x_unreservable_request', () => {
    const background = aiInput('openai.responses', { model: 'gpt-4o', input: 'hi', background: true, max_output_tokens: 50 }, { path: '/v1/responses', settles: true });
    const refused = decide(TOKEN_LIMIT(), background);
    expect(refused).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_unreservable_request', httpStatus: 403 });
    expect(refused.message).toContain('token limit tokens-per-team cannot be charged for a background response');
    expect(decide(TOKEN_LIMIT(', shadow: true'), background)).toMatchObject({ result: 'WARNING', reasonCode: 'x_unreservable_request' });
    const batch = aiInput('anthropic.batches', { requests: [{ custom_id: 'a', params: { model: 'claude-haiku-4-5', max_tokens: 5, messages: [] } }] }, { path: '/v1/messages/batches', settles: true });
    expect(decide(TOKEN_LIMIT(), batch).reasonCode).toBe('x_unreservable_request');
    // A call billed now is charged its usage behind ext_proc: nothing to refuse.
    expect(decide(TOKEN_LIMIT(), aiInput('openai.chat', chat, { settles: true })).result).toBe('ALLOWED');
  });
});
