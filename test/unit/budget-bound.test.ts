/**
 * The bound: what a request reserves covers everything the provider can bill for it, and what it
 * is charged when the provider never says is its hold.
 */
import { describe, expect, it } from 'vitest';
import { createBudgeter } from '../../src/governance/budgeting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createUsageAccounting, exchangeOutcome, type ExchangeOutcome } from '../../src/governance/usage-accounting.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { parseAiRequestBody, type AiRequest } from '../../src/usage/request-body.js';
import type { UsageReport } from '../../src/usage/response-usage.js';

const NOW = Date.UTC(2026, 11, 1, 12);

export function budgetSetup(options: { budgetExtra?: string; pricing?: string; amount?: string } = {}) {
  const text = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: bound }
spec:
  teams: { ml-platform: {} }
  pricing:
${options.pricing ?? `    defaults: false
    models:
      - { model: claude-sonnet-4-5, input: "3", output: "15" }`}
  budgets:
    - name: team-daily
      key: [team]
      amount: "${options.amount ?? '1'}"
      period: daily${options.budgetExtra ?? ''}
`;
  const policy = loadPolicyText(text, 'bound.yaml');
  const ledger = createMemoryBudgetLedger({ clock: () => NOW });
  const overshoots: number[] = [];
  const budgeter = createBudgeter({ ledger, policy: () => policy, clock: () => NOW, observer: { event: () => undefined, account: () => undefined, backendFailed: () => undefined, overshoot: (_name, _held, actual) => overshoots.push(actual) } });
  let id = 0;
  const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy, newDecisionId: () => `d-${++id}` }), budgeter });
  const decide = (ai: Partial<AiRequest> = {}, bodyBytes = 100) =>
    Promise.resolve(governor.evaluate({
      headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name],
      ai: { request: { api: 'anthropic.messages', model: 'claude-sonnet-4-5', stream: true, outputCap: 1000, n: 1, inputEstimateTokens: 10, needsIncludeUsage: false, ...ai } },
      bodyBytes,
      settles: true,
    }));
  const accounting = createUsageAccounting({ policy: () => policy });
  const finish = async (decision: Awaited<ReturnType<typeof decide>>, outcome: ExchangeOutcome, report: Partial<UsageReport>, upstreamStatus: number | undefined = 200) => {
    await budgeter.settle(decision, accounting.account({ decision, startedAt: 0, report: { usage: undefined, modelServed: undefined, estimatedOutputTokens: 0, complete: false, providerError: undefined, ...report }, upstreamStatus, outcome })!);
    return ledger.state([decision.budget!.entries[0]!.account])[0]!;
  };
  return { decide, finish, overshoots, policy };
}

// 100 bytes × $3/M + 1000 × $15/M = $0.0153
const WORST = 15_300_000;

describe('unknown usage settles at the hold', () => {
  it('charges a stream cut after its first delta (a reasoning model’s hidden tokens never stream) its whole hold by default', async () => {
    const { decide, finish } = budgetSetup();
    const decision = await decide();
    expect(await finish(decision, 'interrupted', { estimatedOutputTokens: 1 })).toEqual({ spent: WORST, reserved: 0, limit: 1e9 });
  });

  it('charges a stream that ended without usage, and one that never answered, their hold', async () => {
    const { decide, finish } = budgetSetup();
    expect((await finish(await decide(), 'ended_without_usage', { estimatedOutputTokens: 5 })).spent).toBe(WORST);
    expect((await finish(await decide(), 'no_response', {}, undefined)).spent).toBe(2 * WORST);
  });

  it('charges the estimate instead when the budget says unknownUsage: estimate', async () => {
    const { decide, finish } = budgetSetup({ budgetExtra: '\n      unknownUsage: estimate' });
    // 10 input tokens × $3/M + 1 output × $15/M = 45 nano-USD … × 1000
    expect((await finish(await decide(), 'interrupted', { estimatedOutputTokens: 1 })).spent).toBe(45_000);
  });

  it('charges the provider’s own usage when it came, and nothing when the provider refused', async () => {
    const { decide, finish } = budgetSetup();
    expect((await finish(await decide(), 'completed', { complete: true, usage: { input: 10, cachedInput: 0, cacheWrite: 0, output: 10, reasoning: 0 } })).spent).toBe(180_000);
    expect((await finish(await decide(), 'upstream_error', {}, 429)).spent).toBe(180_000);
  });
});

describe('Envoy’s own local replies are not the provider refusing', () => {
  it('tells a local reply from an upstream answer by the router’s upstream mark', () => {
    expect(exchangeOutcome('completed', { status: 504, fromUpstream: false, usageComplete: false })).toBe('local_reply');
    expect(exchangeOutcome('completed', { status: 503, fromUpstream: false, usageComplete: false })).toBe('local_reply');
    expect(exchangeOutcome('completed', { status: 503, fromUpstream: true, usageComplete: false })).toBe('upstream_error');
    expect(exchangeOutcome('completed', { status: 200, fromUpstream: true, usageComplete: false })).toBe('ended_without_usage');
    expect(exchangeOutcome('interrupted', { status: 200, fromUpstream: true, usageComplete: false })).toBe('interrupted');
    expect(exchangeOutcome('completed', { status: 200, fromUpstream: true, usageComplete: true })).toBe('completed');
  });

  it('charges a local 504 (an idle timeout after the provider took the request) its hold, never releases it', async () => {
    const { decide, finish } = budgetSetup();
    expect(await finish(await decide(), 'local_reply', {}, 504)).toEqual({ spent: WORST, reserved: 0, limit: 1e9 });
  });
});

describe('the worst case covers what the body does not carry', () => {
  const defaults = `    defaults: true`;
  const requestOf = (api: AiRequest['api'], body: Record<string, unknown>) => {
    const bytes = Buffer.from(JSON.stringify(body));
    const parsed = parseAiRequestBody(api, bytes);
    if (!parsed.ok) throw new Error(parsed.problem.message);
    return { ai: parsed.request, bytes: bytes.length };
  };
  const reserveFor = async (api: AiRequest['api'], body: Record<string, unknown>, options: Parameters<typeof budgetSetup>[0] = {}) => {
    const { decide } = budgetSetup({ pricing: defaults, amount: '100', ...options });
    const { ai, bytes } = requestOf(api, body);
    return { decision: await decide(ai, bytes), bytes };
  };

  it('reserves the model’s context window for a previous_response_id (the issue’s $0.0005 hold)', async () => {
    const { decision } = await reserveFor('openai.responses', { model: 'gpt-4o', previous_response_id: 'resp_1', input: 'and then?', max_output_tokens: 1000 });
    // 128,000 × $2.50/M + 1000 × $10/M = $0.32 + $0.01
    expect(decision.budget?.worstCaseNano).toBe(330_000_000);
  });

  it('reserves the window for an image URL, a file id and a conversation, and refuses them under a budget that cannot pay', async () => {
    const image = await reserveFor('openai.chat', { model: 'gpt-4o', max_completion_tokens: 1000, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] });
    expect(image.decision.budget?.worstCaseNano).toBe(330_000_000);
    const file = await reserveFor('anthropic.messages', { model: 'claude-haiku-4-5', max_tokens: 1000, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'file', file_id: 'file_1' } }] }] });
    // 200,000 × $1/M + 1000 × $5/M
    expect(file.decision.budget?.worstCaseNano).toBe(205_000_000);
    const poor = await reserveFor('openai.responses', { model: 'gpt-4o', conversation: 'conv_1', input: 'hi', max_output_tokens: 10 }, { amount: '0.10' });
    expect(poor.decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_EXCEEDED' });
  });

  it('refuses with x_unreservable_request when the model has no known window', async () => {
    const { decision } = await reserveFor('openai.responses', { model: 'acme-llm', previous_response_id: 'resp_1', input: 'x', max_output_tokens: 10 }, { pricing: `    defaults: false\n    models:\n      - { model: acme-llm, input: "1", output: "1" }` });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_unreservable_request', httpStatus: 403 });
    expect(decision.message).toMatch(/carries input outside its body \(previous_response_id\).*acme-llm has no known context window/);
  });

  it('prices server-side tools per call at the request’s maximum, each call reading up to a window', async () => {
    const body = { model: 'claude-haiku-4-5', max_tokens: 1000, messages: [{ role: 'user', content: 'news?' }], tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }] };
    const { decision, bytes } = await reserveFor('anthropic.messages', body);
    // (bytes + 3 × 200,000) × $1/M + 3 × $0.025 + 1000 × $5/M
    expect(decision.budget?.worstCaseNano).toBe((bytes + 600_000) * 1_000 + 75_000_000 + 5_000_000);
    expect(decision.budget?.toolsNano).toBe(75_000_000);
    const unbounded = await reserveFor('anthropic.messages', { ...body, tools: [{ type: 'web_search_20250305', name: 'web_search' }] });
    expect(unbounded.decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_unreservable_request' });
    expect(unbounded.decision.message).toMatch(/web_search is used with no maximum number of calls \(set max_uses on the web_search tool\)/);
    const responses = await reserveFor('openai.responses', { model: 'gpt-4o', input: 'news?', max_output_tokens: 100, tools: [{ type: 'web_search' }] });
    expect(responses.decision.message).toMatch(/set max_tool_calls/);
  });

  it('prices service_tier priority, long context and 1-hour cache writes in the reservation', async () => {
    const priority = await reserveFor('openai.chat', { model: 'gpt-4o', service_tier: 'priority', max_completion_tokens: 1000, messages: [{ role: 'user', content: 'hi' }] });
    // bytes × $4.25/M + 1000 × $17/M
    expect(priority.decision.budget?.worstCaseNano).toBe(priority.bytes * 4_250 + 17_000_000);
    const long = await reserveFor('anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 1000, messages: [{ role: 'user', content: 'x'.repeat(250_000) }] });
    // Past 200K input: $6 / $22.50
    expect(long.decision.budget?.worstCaseNano).toBe(long.bytes * 6_000 + 22_500_000);
    const cached = await reserveFor('anthropic.messages', { model: 'claude-sonnet-4-5', max_tokens: 1000, system: [{ type: 'text', text: 'rules', cache_control: { type: 'ephemeral', ttl: '1h' } }], messages: [{ role: 'user', content: 'hi' }] });
    // 1-hour cache writes: $6/M for every input token
    expect(cached.decision.budget?.worstCaseNano).toBe(cached.bytes * 6_000 + 15_000_000);
  });

  it('settles the tool calls the response counted, the tier and the 1-hour writes it asked for', async () => {
    const { decide, finish } = budgetSetup({ pricing: defaults, amount: '100' });
    const { ai, bytes } = requestOf('anthropic.messages', { model: 'claude-haiku-4-5', max_tokens: 1000, messages: [{ role: 'user', content: 'news?' }], tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }] });
    const decision = await decide(ai, bytes);
    const state = await finish(decision, 'completed', { complete: true, usage: { input: 5000, cachedInput: 0, cacheWrite: 0, output: 200, reasoning: 0, serverToolCalls: { web_search: 1 } } });
    // 5000 × $1/M + 200 × $5/M + 1 × $0.025
    expect(state.spent).toBe(5_000_000 + 1_000_000 + 25_000_000);
  });

  it('reserves the re-serialized size of a body whose numbers grow when the service rewrites it', async () => {
    // No cap: the service sets one, so the body is re-serialized and 1e20 is sent as 100000000000000000000.
    const text = '{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}],"top_k":1e20,"temperature":1e-0}';
    const parsed = parseAiRequestBody('anthropic.messages', Buffer.from(text));
    if (!parsed.ok) throw new Error(parsed.problem.message);
    const reserialized = Buffer.byteLength(JSON.stringify(JSON.parse(text)));
    expect(reserialized).toBeGreaterThan(text.length);
    const { decide } = budgetSetup({ pricing: defaults, amount: '100' });
    const decision = await decide(parsed.request, text.length);
    const cap = decision.budget!.outputCap!;
    expect(decision.budget?.worstCaseNano).toBe((reserialized + 128) * 1_000 + cap * 5_000);
  });
});
