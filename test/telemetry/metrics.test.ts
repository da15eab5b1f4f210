/**
 * /metrics of a running service, scraped and parsed after a known mix of
 * requests over both gRPC services: every count matches.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { startService, type RunningService } from '../support/index.js';
import { extProcDecide, scrape, writePolicy } from './telemetry-support.js';

let service: RunningService | undefined;
let client: GovernanceClient | undefined;
afterEach(async () => {
  client?.close();
  await service?.stop().catch(() => undefined);
  service = undefined;
});

async function start(env: Record<string, string> = {}) {
  service = await startService({ policyPath: writePolicy(), env });
  client = createGovernanceClient(`${service.host}:${service.grpcPort}`);
  return { service, client };
}

const ctx = (team: string, customer: string, extra: Record<string, string> = {}) => ({ 'x-genops-team': team, 'x-genops-customer-id': customer, 'x-genops-project': 'chatbot', ...extra });

describe('/metrics', () => {
  it('counts a known mix of decisions by service, decision, reason code, team, project, tier and model', async () => {
    const { service, client } = await start();
    const check = async (headers: Record<string, string>, expected: number) => expect((await client.check(headers)).status.code).toBe(expected);
    for (let i = 0; i < 3; i++) await check(ctx('ml-platform', `p-${i}`, { 'x-genops-customer-tier': 'premium' }), 0);
    for (let i = 0; i < 3; i++) await check(ctx('product-team', 'same-customer', { 'x-genops-customer-tier': 'standard' }), i < 2 ? 0 : 8);
    for (let i = 0; i < 2; i++) await check(ctx('marketing', 'm'), 7);
    await check({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'x' }, 7);
    await check(ctx('ML_Platform!', 'x'), 3);
    await check(ctx('product-team', 'other', { 'x-genops-model': 'gpt-4o' }), 7);
    await check(ctx('ml-research', 'r', { 'x-genops-model': 'gpt-4o' }), 0);
    for (let i = 0; i < 2; i++) expect((await extProcDecide(client, ctx('ml-platform', `e-${i}`, { 'x-genops-customer-tier': 'basic' }))).immediate_response).toBeUndefined();
    expect((await extProcDecide(client, ctx('finance', 'f'))).immediate_response?.status?.code).toBe(403);

    const metrics = await scrape(service.adminUrl);
    const series = metrics.find('genops_requests_total').map((sample) => ({ ...sample.labels, value: sample.value }));
    const base = { genops_project: 'chatbot', genops_tier: '', model: '', reason_code: '', dry_run: 'false' };
    // Each Check carries a Chat Completions body: its model (claude-sonnet-4-5 unless the test names one)
    // is the model label, whatever the decision (the body's model is the model; a header cannot name another).
    const sonnet = 'claude-sonnet-4-5';
    expect(series).toEqual(
      expect.arrayContaining([
        { ...base, service: 'authz', decision: 'ALLOWED', genops_team: 'ml-platform', genops_tier: 'premium', model: sonnet, value: 3 },
        { ...base, service: 'authz', decision: 'ALLOWED', genops_team: 'product-team', genops_tier: 'standard', model: sonnet, value: 2 },
        { ...base, service: 'authz', decision: 'RATE_LIMITED', reason_code: 'RATE_LIMITED', genops_team: 'product-team', genops_tier: 'standard', model: sonnet, value: 1 },
        { ...base, service: 'authz', decision: 'BLOCKED', reason_code: 'x_team_not_allowed', genops_team: '_unlisted', model: sonnet, value: 2 },
        { ...base, service: 'authz', decision: 'BLOCKED', reason_code: 'x_missing_context', genops_team: 'ml-platform', genops_project: '', model: sonnet, value: 1 },
        { ...base, service: 'authz', decision: 'BLOCKED', reason_code: 'x_invalid_context', genops_team: '', model: sonnet, value: 1 },
        { ...base, service: 'authz', decision: 'BLOCKED', reason_code: 'POLICY_DENY_MODEL', genops_team: 'product-team', model: 'gpt-4o', value: 1 },
        { ...base, service: 'authz', decision: 'WARNING', reason_code: 'POLICY_DENY_MODEL', genops_team: 'ml-research', model: 'gpt-4o', dry_run: 'true', value: 1 },
        { ...base, service: 'ext_proc', decision: 'ALLOWED', genops_team: 'ml-platform', genops_tier: 'basic', value: 2 },
        { ...base, service: 'ext_proc', decision: 'BLOCKED', reason_code: 'x_team_not_allowed', genops_team: '_unlisted', value: 1 },
      ]),
    );
    expect(series).toHaveLength(10);
    expect(metrics.value('genops_requests_total')).toBe(15);

    expect(metrics.value('genops_decision_duration_seconds_count', { service: 'authz' })).toBe(12);
    expect(metrics.value('genops_decision_duration_seconds_count', { service: 'ext_proc' })).toBe(3);
    expect(metrics.value('genops_decision_duration_seconds_bucket', { service: 'authz', le: '+Inf' })).toBe(12);
    expect(metrics.find('genops_decision_duration_seconds_bucket', { service: 'authz' }).map((sample) => sample.labels.le)).toEqual(
      ['0.00005', '0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '1', '+Inf'],
    );
    expect(metrics.value('genops_decision_duration_seconds_sum', { service: 'authz' })).toBeGreaterThan(0);

    // Rate limits: product-team's "tiny" bucket was checked for its 3 requests the policy allowed (2 ok, 1 over).
    expect(metrics.value('genops_rate_limit_checks_total', { limit: 'tiny', outcome: 'ok' })).toBe(2);
    expect(metrics.value('genops_rate_limit_checks_total', { limit: 'tiny', outcome: 'over_limit' })).toBe(1);

    // Registered families, including those with no samples yet; customer ids stay out by default.
    for (const [name, type] of [
      ['genops_requests_total', 'counter'],
      ['genops_cost_total', 'counter'],
      ['genops_tokens_total', 'counter'],
      ['genops_decision_duration_seconds', 'histogram'],
      ['genops_policy_reloads_total', 'counter'],
      ['genops_backend_errors_total', 'counter'],
      ['genops_rate_limit_checks_total', 'counter'],
      ['genops_spans_exported_total', 'counter'],
      ['genops_spans_dropped_total', 'counter'],
      ['process_cpu_user_seconds_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'],
      ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
    ]) expect(metrics.types.get(name!), name).toBe(type);
    expect(metrics.find('genops_cost_total')).toEqual([]);
    expect(metrics.find('genops_tokens_total')).toEqual([]);
    expect(metrics.value('genops_policy_reloads_total', { result: 'failure' })).toBe(0);
    expect(metrics.samples.filter((sample) => 'genops_customer_id' in sample.labels)).toEqual([]);
  });

  it('genops_customer_id is opt-in and capped: past the limit customers share one "_other" series', async () => {
    const { service, client } = await start({ GENOPS_METRICS_CUSTOMER_LABEL: 'true', GENOPS_METRICS_CUSTOMER_LIMIT: '3' });
    for (const customer of ['c1', 'c2', 'c1', 'c3', 'c4', 'c5', 'c6', 'c2']) {
      expect((await client.check(ctx('ml-platform', customer))).status.code).toBe(0);
    }
    const metrics = await scrape(service.adminUrl);
    const byCustomer = Object.fromEntries(metrics.find('genops_requests_total').map((sample) => [sample.labels.genops_customer_id, sample.value]));
    expect(byCustomer).toEqual({ c1: 2, c2: 2, c3: 1, _other: 3 });
  });

  it('a bad metrics setting stops the start-up naming it', async () => {
    await expect(startService({ env: { GENOPS_METRICS_CUSTOMER_LABEL: 'yes' }, readyTimeoutMs: 5_000 })).rejects.toThrow('GENOPS_METRICS_CUSTOMER_LABEL=yes: must be true or false');
  });
});
