/**
 * The hostile client picks the adapter: ext_authz sees the body but never the response, forward
 * auth sees neither, so behind them a budget was never reserved and a token limit never charged —
 * an AI call they selected passed unreserved and uncharged (README "ext_authz does not reserve").
 * Through the real Envoy booting deploy/envoy/ext-authz.yaml and the real nginx with the shipped
 * forward-auth snippet, each such call is now refused (403 x_ext_proc_required naming
 * deploy/envoy/ext-proc.yaml) and never reaches the upstream; the same call through the real Envoy
 * with deploy/envoy/ext-proc.yaml is the positive control: reserved, settled, charged. Token counts
 * (free) pass every adapter with their model checked.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGovernanceStack, startStubLlm, type GovernanceStack, type StubLlm } from '../support/index.js';
import { eventually } from '../telemetry/telemetry-support.js';
import { writeDefaultPolicy } from '../support/default-policy.js';
import { rawRequest, refusal, startForwardAuthStack, type ForwardAuthStack } from './hostile-support.js';

const TEST_ID = 'x-test-id';
const ADMIN_TOKEN = 'hostile-adapters-admin-token';
const BUDGETED = 'budgeted';
const DRY_RUN_BUDGETED = 'dry-run-budgeted';
const TOKEN_LIMITED = 'token-limited';
const json = { 'content-type': 'application/json' };
const messages = (model = 'claude-haiku-4-5') => JSON.stringify({ model, max_tokens: 64, messages: [{ role: 'user', content: 'What is the capital of France?' }] });
const chat = (model = 'gpt-4o') => JSON.stringify({ model, messages: [{ role: 'user', content: 'What is the capital of France?' }], max_completion_tokens: 64 });
const gemini = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'What is the capital of France?' }] }], generationConfig: { maxOutputTokens: 64 } });
const countBody = (model = 'claude-haiku-4-5') => JSON.stringify({ model, messages: [{ role: 'user', content: 'What is the capital of France?' }] });

/** The default policy with an enforced budget, a dry-run budget and an enforced token limit, each for its own project. */
function writePolicy(dir: string): string {
  return writeDefaultPolicy(dir, 'policy.yaml', (spec) => {
    spec.budgets = [
      { name: 'project-daily', key: ['project'], amount: '5', period: 'daily', selector: { projects: [BUDGETED] } },
      { name: 'project-daily-dry-run', key: ['project'], amount: '5', period: 'daily', mode: 'dry-run', selector: { projects: [DRY_RUN_BUDGETED] } },
    ];
    (spec.rateLimits as unknown[]).push({ name: 'project-tokens', key: ['project'], unit: 'tokens', capacity: 10, refill: { amount: 10, every: '3600s' }, selector: { projects: [TOKEN_LIMITED] } });
  });
}

/** ml-platform may use every model: no model rule gets in the way, only the budgets and limits. */
const tagged = (project: string, extra: Record<string, string> = {}) => {
  const testId = randomUUID();
  return { testId, headers: { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': `c-${testId.slice(0, 8)}`, 'x-genops-project': project, ...json, [TEST_ID]: testId, ...extra } };
};

interface BudgetDocument { budgets: { name: string; accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] }

describe.each(['ext-authz', 'ext-proc'] as const)('budgets and token limits through the real Envoy (%s)', (mode) => {
  let dir: string | undefined;
  let llm: StubLlm | undefined;
  let stack: GovernanceStack | undefined;
  let port = 0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'genops-hostile-adapters-'));
    llm = await startStubLlm({ chunkDelayMs: 1 });
    stack = await startGovernanceStack({ mode, upstreamPort: llm.port, policyPath: writePolicy(dir), serviceEnv: { GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });
    port = Number(new URL(stack.url).port);
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const reached = (testId: string) => llm!.received(testId);
  const usageOf = (decisionId: string) => stack!.service.logs().find((line) => line.event === 'usage' && line.decision_id === decisionId);
  const account = async (budget: string, key: string) => {
    const document = (await (await fetch(`${stack!.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as BudgetDocument;
    return document.budgets.find((entry) => entry.name === budget)?.accounts.find((entry) => entry.key.includes(key));
  };

  if (mode === 'ext-authz') {
    it.each([
      ['/v1/messages', messages()],
      ['/v1/chat/completions', chat()],
      ['/v1beta/models/gemini-2.5-pro:generateContent', gemini],
    ])('POST %s under an enforced budget: 403 x_ext_proc_required naming ext-proc.yaml, never forwarded (was ALLOWED, nothing reserved)', async (path, body) => {
      const { testId, headers } = tagged(BUDGETED);
      const denial = refusal(await rawRequest(port, 'POST', path, headers, body), 403, 'x_ext_proc_required');
      expect(denial.message).toContain('ext_authz cannot see the response');
      expect(denial.message).toContain('budget project-daily');
      expect(denial.message).toContain('deploy/envoy/ext-proc.yaml');
      expect(reached(testId)).toHaveLength(0);
    });

    it('under an enforced token limit every call is refused (was admitted forever: never charged, the bucket stayed full)', async () => {
      for (let call = 0; call < 3; call++) {
        const { testId, headers } = tagged(TOKEN_LIMITED);
        expect(refusal(await rawRequest(port, 'POST', '/v1/messages', headers, messages()), 403, 'x_ext_proc_required').message).toContain('token limit project-tokens');
        expect(reached(testId)).toHaveLength(0);
      }
    });

    it('a dry-run budget lets the call through as WARNING x_ext_proc_required, logged with what it would have done', async () => {
      const { testId, headers } = tagged(DRY_RUN_BUDGETED);
      const answer = await rawRequest(port, 'POST', '/v1/messages', headers, messages());
      expect(answer.status, answer.body).toBe(200);
      expect(reached(testId)).toHaveLength(1);
      const logged = await eventually(() => stack!.service.logs().find((line) => line.event === 'decision' && line.decision_id === answer.headers['x-genops-decision-id']), 'the decision log line');
      expect(logged).toMatchObject({ result: 'WARNING', reason_code: 'x_ext_proc_required', dry_run: true });
    });
  } else {
    it('positive control: the same call is reserved before it is sent and settled at its actual cost', async () => {
      const { testId, headers } = tagged(BUDGETED);
      const answer = await rawRequest(port, 'POST', '/v1/messages', headers, messages());
      expect(answer.status, answer.body).toBe(200);
      expect(reached(testId)).toHaveLength(1);
      const usage = await eventually(() => usageOf(String(answer.headers['x-genops-decision-id'])), 'the usage record') as { budgets: string[]; reserved: number; cost: string };
      expect(usage.budgets).toEqual(['project-daily']);
      expect(usage.reserved).toBeGreaterThan(Number(usage.cost));
      const settled = await eventually(async () => {
        const found = await account('project-daily', BUDGETED);
        return found && found.reserved_usd === 0 ? found : undefined;
      }, 'the hold settled');
      expect(settled.spent_usd).toBeCloseTo(Number(usage.cost), 9);
    });

    it('positive control: a token limit is charged the usage, and the next call waits for the bucket to refill', async () => {
      const first = tagged(TOKEN_LIMITED);
      const answer = await rawRequest(port, 'POST', '/v1/messages', first.headers, messages());
      expect(answer.status, answer.body).toBe(200);
      await eventually(() => usageOf(String(answer.headers['x-genops-decision-id'])), 'the usage record');
      // 42 input + 17 output tokens against a bucket of 10: in debt until it refills.
      const second = tagged(TOKEN_LIMITED);
      const denied = await eventually(async () => {
        const next = await rawRequest(port, 'POST', '/v1/messages', second.headers, messages());
        return next.status === 429 ? next : undefined;
      }, 'the token limit to refuse');
      refusal(denied, 429, 'RATE_LIMITED');
    });

    it('a background response under the token limit: 403 x_unreservable_request, never forwarded (was admitted and never charged: billed later)', async () => {
      const { testId, headers } = tagged(TOKEN_LIMITED);
      const body = JSON.stringify({ model: 'gpt-4o', input: 'Write a long essay.', background: true, max_output_tokens: 4000 });
      expect(refusal(await rawRequest(port, 'POST', '/v1/responses', headers, body), 403, 'x_unreservable_request').message).toContain('token limit project-tokens cannot be charged for a background response');
      expect(reached(testId)).toHaveLength(0);
    });
  }

  it('token counts are free: they pass whatever the budget and token limit, unchanged, with nothing reserved or recorded', async () => {
    // Behind ext_proc the token limit's bucket is in debt by now (the positive control above): a count bills no tokens, so it still passes.
    for (const [project, path, body] of [
      [BUDGETED, '/v1/messages/count_tokens', countBody()],
      [TOKEN_LIMITED, '/v1/messages/count_tokens', countBody()],
      [BUDGETED, '/v1beta/models/gemini-2.5-pro:countTokens', JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] })],
      [BUDGETED, '/v1/responses/input_tokens', JSON.stringify({ model: 'gpt-4o', input: 'hi' })],
    ] as const) {
      const { testId, headers } = tagged(project);
      const answer = await rawRequest(port, 'POST', path, headers, body);
      expect(answer.status, `${path}: ${answer.body}`).toBe(200);
      expect(JSON.stringify(JSON.parse(answer.body))).toMatch(/"(input_tokens|totalTokens)":42/);
      // Forwarded byte for byte: no output cap set, nothing to reserve for.
      expect(reached(testId).map((request) => request.body)).toEqual([body]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(usageOf(String(answer.headers['x-genops-decision-id']))).toBeUndefined();
    }
    if (mode === 'ext-proc') expect((await account('project-daily', BUDGETED))?.reserved_usd ?? 0).toBe(0);
  });

  it('a token count still has its model checked: product-team may not count for opus', async () => {
    const { testId, headers } = tagged(BUDGETED, { 'x-genops-team': 'product-team' });
    expect(refusal(await rawRequest(port, 'POST', '/v1/messages/count_tokens', headers, countBody('claude-opus-4-1')), 403, 'POLICY_DENY_MODEL').message).toContain('claude-opus-4-1');
    expect(reached(testId)).toHaveLength(0);
  });
});

describe('budgets and token limits through the real nginx (forward auth: no body, no response)', () => {
  let nginx: ForwardAuthStack | undefined;
  let port = 0;
  beforeAll(async () => {
    nginx = await startForwardAuthStack({ prefix: 'genops-hostile-adapters-nginx-', writePolicy });
    port = nginx.port;
  });
  afterAll(() => nginx?.stop());
  const reached = (testId: string) => nginx!.llm.received(testId);

  it.each([
    [BUDGETED, '/v1/chat/completions', chat(), 'budget project-daily'],
    [BUDGETED, '/v1beta/models/gemini-2.5-pro:generateContent', gemini, 'budget project-daily'],
    [TOKEN_LIMITED, '/v1/messages', messages(), 'token limit project-tokens'],
  ])('project %s, POST %s: 403 x_ext_proc_required naming ext-proc.yaml, never forwarded', async (project, path, body, rule) => {
    const { testId, headers } = tagged(project);
    const denial = refusal(await rawRequest(port, 'POST', path, headers, body), 403, 'x_ext_proc_required');
    expect(denial.message).toContain('forward auth cannot see the response');
    expect(denial.message).toContain(rule);
    expect(denial.message).toContain('deploy/envoy/ext-proc.yaml');
    expect(reached(testId)).toHaveLength(0);
  });

  it('a token count whose model is in the path passes under the budget (free, and its model checked without the body)', async () => {
    const { testId, headers } = tagged(BUDGETED);
    const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
    expect((await rawRequest(port, 'POST', '/v1beta/models/gemini-2.5-pro:countTokens', headers, body)).status).toBe(200);
    expect(reached(testId)).toHaveLength(1);
    const forbidden = tagged(BUDGETED, { 'x-genops-team': 'product-team' });
    refusal(await rawRequest(port, 'POST', '/v1beta/models/gemini-2.5-pro:countTokens', forbidden.headers, body), 403, 'POLICY_DENY_MODEL');
    expect(reached(forbidden.testId)).toHaveLength(0);
  });
});
