/**
 * The bound through the real Envoy (deploy/envoy/ext-proc.yaml): the stub provider bills the most
 * each forwarded request allows (output = its cap, tools = their maximum, inputs outside the body =
 * the context window), sixteen requests at once, and spent never passes the amount. The old holes are
 * tests: previous_response_id held at the body's bytes, a cut o-series stream charged ~1 token, a
 * local reply released as a refusal, a long stream outliving its hold.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { httpRequest, STUB_BEHAVIOR_HEADER, type GovernanceStack } from '../support/index.js';
import { eventually, scrape } from '../telemetry/telemetry-support.js';
import { useLlmStack } from './priced-stack.js';

const WINDOW = 200_000;
/** /budgets needs the operator's token. */
const ADMIN_TOKEN = 'bound-admin-token-for-tests';
const AMOUNT_USD = 2;

function editPolicy(spec: Record<string, unknown>): void {
  spec.rateLimits = [];
  spec.pricing = {
    defaults: false,
    version: 'e2e-bound',
    models: [
      { model: 'claude-haiku-4-5', input: '1', cacheWrite: '1.25', output: '5', contextWindow: WINDOW },
      { model: 'gpt-4o', input: '2.50', output: '10', contextWindow: 128_000 },
      { model: 'o4-mini', input: '1.10', output: '4.40', contextWindow: WINDOW },
    ],
    tools: { web_search: '0.01' },
  };
  spec.budgets = [
    { name: 'project-daily', key: ['project'], amount: AMOUNT_USD, period: 'daily', timeZone: 'UTC', maxOutputTokens: 2000 },
    // Keys longer than the ledger's 512-character ids.
    { name: 'long-keys', key: ['customerId', 'project', 'feature', 'costCenter', 'environment'], selector: { teams: ['data-science'] }, amount: 1, period: '24h' },
  ];
}

const headers = (project: string, behavior = `bill-max=${WINDOW}`) => ({
  'content-type': 'application/json',
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': 'c-1',
  'x-genops-project': project,
  [STUB_BEHAVIOR_HEADER]: behavior,
});

interface Account {
  readonly key: string;
  readonly spent_usd: number;
  readonly reserved_usd: number;
}

async function accountOf(stack: GovernanceStack, project: string): Promise<Account | undefined> {
  const document = (await (await fetch(`${stack.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { accounts: Account[] }[] };
  return document.budgets.flatMap((budget) => budget.accounts).find((entry) => entry.key === project);
}

const settled = (stack: GovernanceStack, project: string, what: string) =>
  eventually(async () => {
    const account = await accountOf(stack, project);
    return account && account.reserved_usd === 0 && account.spent_usd > 0 ? account : undefined;
  }, what, 20_000);

describe('the bound through the real Envoy', () => {
  const get = useLlmStack('ext-proc', { prefix: 'genops-bound-', editPolicy, stub: { chunkDelayMs: 20 }, serviceEnv: { GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });

  it('never spends past the amount when every admitted request is billed the most it allows, sixteen at once', async () => {
    const { stack } = get();
    const project = `max-${randomUUID().slice(0, 6)}`;
    const message = { role: 'user', content: 'What happened today?' };
    const bodies = [
      { model: 'claude-haiku-4-5', max_tokens: 2000, stream: true, messages: [message] },
      // No cap: the service sets one, and the stub bills all of it.
      { model: 'claude-haiku-4-5', stream: true, messages: [message] },
      // Server tools: two searches, each reading up to a window of results.
      { model: 'claude-haiku-4-5', max_tokens: 500, messages: [message], tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 2 }] },
      // A file the body only names: up to a window of input.
      { model: 'claude-haiku-4-5', max_tokens: 500, stream: true, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'file', file_id: 'file_011' } }, { type: 'text', text: 'Summarize' }] }] },
    ];
    const responses = await Promise.all(Array.from({ length: 16 }, (_, index) => httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project), body: JSON.stringify(bodies[index % bodies.length]) })));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status !== 200 && status !== 429)).toEqual([]);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThan(0);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThan(0);
    const account = await settled(stack, project, 'every admitted request to settle');
    expect(account.spent_usd).toBeLessThanOrEqual(AMOUNT_USD);
    // Each admitted request was charged what the stub billed: the tool-using ones over $0.40 each.
    expect(account.spent_usd).toBeGreaterThan(0.4);
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_budget_overshoot_total', { budget: 'project-daily' }) ?? 0).toBe(0);
  });

  it('holds a previous_response_id request at the model’s context window, not at its body’s bytes', async () => {
    const { stack } = get();
    const project = `prev-${randomUUID().slice(0, 6)}`;
    const body = JSON.stringify({ model: 'gpt-4o', previous_response_id: 'resp_68af', input: 'And then?', max_output_tokens: 100 });
    // 128,000 × $2.50/M + 100 × $10/M = $0.321: six fit in $2, never fifty.
    const responses = await Promise.all(Array.from({ length: 10 }, () => httpRequest(`${stack.url}/v1/responses`, { method: 'POST', headers: headers(project, 'bill-max=128000'), body })));
    expect(responses.filter((response) => response.status === 200)).toHaveLength(6);
    const refused = responses.find((response) => response.status === 429)!;
    expect(JSON.parse(refused.body)).toMatchObject({ reason_code: 'BUDGET_EXCEEDED' });
    const account = await settled(stack, project, 'the previous_response_id requests to settle');
    expect(account.spent_usd).toBeCloseTo(6 * 0.321, 6);
  });

  it('serves a request whose budget key is longer than the ledger takes (hashed), never a gRPC error', async () => {
    const { stack } = get();
    const long = (letter: string, length = 128) => letter.repeat(length);
    const response = await httpRequest(`${stack.url}/v1/messages`, {
      method: 'POST',
      headers: { ...headers(long('p')), 'x-genops-team': 'data-science', 'x-genops-customer-id': long('c'), 'x-genops-feature': long('f'), 'x-genops-cost-center': long('k', 64), 'x-genops-environment': long('e', 32) },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(response.status, response.body).toBe(200);
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_budget_decisions_total', { budget: 'long-keys', outcome: 'reserved' })).toBeGreaterThan(0);
    expect(metrics.find('genops_internal_errors_total', {}).reduce((sum, sample) => sum + sample.value, 0)).toBe(0);
  });

  it('refuses a server tool with no maximum of calls under an enforced budget, naming the setting', async () => {
    const { stack, llm } = get();
    const project = `tools-${randomUUID().slice(0, 6)}`;
    const body = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'news' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] });
    const response = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project), body });
    expect(response.status).toBe(403);
    expect(JSON.parse(response.body)).toMatchObject({ reason_code: 'x_unreservable_request' });
    expect(JSON.parse(response.body).message).toMatch(/set max_uses on the web_search tool/);
    expect(llm.requestsWith('x-genops-project', project)).toHaveLength(0);
  });

  it('charges a cut o-series stream its hold, not the one output token it streamed', async () => {
    const { stack } = get();
    const project = `cut-${randomUUID().slice(0, 6)}`;
    const body = JSON.stringify({ model: 'o4-mini', input: 'Prove it.', max_output_tokens: 10_000, stream: true });
    // The client sees the stream cut (the request rejects, or ends short); either way the provider billed it.
    await httpRequest(`${stack.url}/v1/responses`, { method: 'POST', headers: headers(project, 'reset-mid-stream'), body }).catch(() => undefined);
    const account = await settled(stack, project, 'the cut stream to settle');
    // (bytes) × $1.10/M + 10,000 × $4.40/M: the whole hold.
    expect(account.spent_usd).toBeCloseTo((Buffer.byteLength(body) * 1.1 + 10_000 * 4.4) / 1e6, 9);
  });

  it('never releases Envoy’s own 503 (the upstream reset before answering) as the provider refusing', async () => {
    const { stack } = get();
    const project = `local-${randomUUID().slice(0, 6)}`;
    const body = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 1000, messages: [{ role: 'user', content: 'hi' }] });
    const response = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project, 'reset-before-headers'), body });
    expect(response.status).toBe(503);
    expect(response.headers['x-envoy-upstream-service-time']).toBeUndefined();
    const account = await settled(stack, project, 'the local reply to settle');
    expect(account.spent_usd).toBeCloseTo((Buffer.byteLength(body) * 1 + 1000 * 5) / 1e6, 9);
    // The provider's own error still releases.
    const refusedProject = `upstream-${randomUUID().slice(0, 6)}`;
    expect((await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(refusedProject, 'status=529'), body })).status).toBe(529);
    const released = await eventually(async () => {
      const account = await accountOf(stack, refusedProject);
      return account && account.reserved_usd === 0 ? account : undefined;
    }, 'the provider error to release');
    expect(released.spent_usd).toBe(0);
  });
});

describe('a hold lives as long as its stream (holds of 5 s, a stream of 12 s)', () => {
  // Eight pieces, 1.8 s apart: the stream outlives two hold lifetimes (renewed every 1.7 s; a busy machine may stall timers a second or two).
  const get = useLlmStack('ext-proc', { prefix: 'genops-bound-', editPolicy, stub: { chunkDelayMs: 1_800 }, serviceEnv: { GENOPS_BUDGET_HOLD_TTL_MS: '5000', GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });

  it('keeps the long stream’s money held, so a second request cannot reserve it, and the settlement never passes the amount', async () => {
    const { stack } = get();
    const project = `long-${randomUUID().slice(0, 6)}`;
    const big = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 100, stream: true, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/scan.png' } }] }] });
    // 200,000 × $1/M + 100 × $5/M = $0.2005 per request: nine fit in $2, the tenth only if a hold expired.
    const streams = Array.from({ length: 9 }, () => httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project), body: big }));
    await new Promise((resolve) => setTimeout(resolve, 10_500));
    // 10.5 s in: every hold has outlived two lifetimes, renewed; the budget is still full.
    expect((await accountOf(stack, project))?.reserved_usd).toBeCloseTo(9 * 0.2005, 6);
    const late = await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project), body: big });
    expect(late.status).toBe(429);
    const finished = await Promise.all(streams);
    expect(finished.map((response) => response.status)).toEqual(Array(9).fill(200));
    const account = await settled(stack, project, 'the long streams to settle');
    expect(account.spent_usd).toBeLessThanOrEqual(AMOUNT_USD);
    expect(account.spent_usd).toBeCloseTo(9 * 0.2005, 6);
  }, 60_000);
});
