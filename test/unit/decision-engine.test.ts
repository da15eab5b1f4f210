import { describe, expect, it } from 'vitest';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { loadPolicyFile, loadPolicyText } from '../../src/policy/policy-store.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';

const defaultPolicy = loadPolicyFile(DEFAULT_POLICY_PATH);

function engineFor(policyYaml?: string) {
  const policy = policyYaml ? loadPolicyText(policyYaml, 'test-policy.yaml') : defaultPolicy;
  let counter = 0;
  return createDecisionEngine({ policy: () => policy, newDecisionId: () => `d-${++counter}` });
}

const base = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot' };
function decide(headers: Record<string, string>, extra: { principal?: string; yaml?: string } = {}) {
  return engineFor(extra.yaml).decide({ headers: (name) => headers[name], principal: extra.principal });
}

describe('decision engine with the default policy', () => {
  it('allows a listed team with full context and routes by tier', () => {
    const decision = decide({ ...base, 'x-genops-customer-tier': 'premium' });
    expect(decision).toMatchObject({ id: 'd-1', result: 'ALLOWED', reasonCode: undefined, route: 'claude-opus', dryRun: false, policyName: 'default' });
    expect(decide({ ...base, 'x-genops-customer-tier': 'standard' }).route).toBe('claude-haiku');
    expect(decide({ ...base, 'x-genops-customer-tier': 'basic' }).route).toBe('claude-sonnet');
    expect(decide(base).route).toBe('claude-sonnet');
  });

  it('applies a team route override: product-team premium customers stay on claude-sonnet', () => {
    expect(decide({ ...base, 'x-genops-team': 'product-team', 'x-genops-customer-tier': 'premium' }).route).toBe('claude-sonnet');
    expect(decide({ ...base, 'x-genops-team': 'product-team', 'x-genops-customer-tier': 'standard' }).route).toBe('claude-haiku');
  });

  it('refuses missing required context with x_missing_context and 403, naming every missing header', () => {
    const decision = decide({ 'x-genops-team': 'ml-platform' });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_missing_context', httpStatus: 403 });
    expect(decision.message).toBe('missing required headers x-genops-customer-id, x-genops-project');
  });

  it('refuses invalid context with x_invalid_context and 400, distinct from missing', () => {
    const decision = decide({ ...base, 'x-genops-customer-id': 'bad id!' });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_invalid_context', httpStatus: 400 });
    expect(decision.message).toContain('x-genops-customer-id');
  });

  it('denies by default: a team not listed is refused', () => {
    expect(decide({ ...base, 'x-genops-team': 'marketing' })).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_team_not_allowed', httpStatus: 403, message: 'team marketing is not allowed to call AI services' });
  });

  it('lets ml-platform use every model and keeps product-team to standard models', () => {
    expect(decide({ ...base, 'x-genops-model': 'claude-opus', 'x-genops-customer-tier': 'premium' }).result).toBe('ALLOWED');
    expect(decide({ ...base, 'x-genops-team': 'product-team', 'x-genops-model': 'claude-opus', 'x-genops-customer-tier': 'premium' })).toMatchObject({
      result: 'BLOCKED',
      reasonCode: 'POLICY_DENY_MODEL',
      message: 'team product-team may not use model claude-opus',
    });
    expect(decide({ ...base, 'x-genops-team': 'product-team', 'x-genops-model': 'claude-haiku' }).result).toBe('ALLOWED');
  });

  it('enforces the models a customer tier may use', () => {
    expect(decide({ ...base, 'x-genops-customer-tier': 'basic', 'x-genops-model': 'claude-opus' })).toMatchObject({
      result: 'BLOCKED',
      reasonCode: 'POLICY_DENY_MODEL',
      message: 'basic tier may not use model claude-opus',
    });
    expect(decide({ ...base, 'x-genops-customer-tier': 'basic', 'x-genops-model': 'claude-haiku' }).result).toBe('ALLOWED');
  });

  it('gives every decision its own id', () => {
    const engine = engineFor();
    const ids = new Set(Array.from({ length: 5 }, () => engine.decide({ headers: (name) => (base as Record<string, string>)[name] }).id));
    expect(ids.size).toBe(5);
  });

  it('refuses a request the adapter could not parse with x_malformed_request and 400', () => {
    const decision = engineFor().decide({ headers: () => undefined, malformed: 'CheckRequest has no attributes.request.http' });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_malformed_request', httpStatus: 400, message: 'CheckRequest has no attributes.request.http' });
  });
});

const principalsPolicy = `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: principals }
spec:
  principals:
    allow: ["spiffe://cluster.local/ns/api-gateway/sa/*", "cluster.local/ns/genops/sa/genops-client"]
  teams:
    ml-platform: {}
    finance:
      principals: ["spiffe://cluster.local/ns/finance/sa/*"]
      tiers: [premium]
`;

describe('principal rules', () => {
  it('admits callers matching the global allow-list, with or without the spiffe:// scheme', () => {
    expect(decide({ 'x-genops-team': 'ml-platform' }, { yaml: principalsPolicy, principal: 'spiffe://cluster.local/ns/api-gateway/sa/gateway' }).result).toBe('ALLOWED');
    expect(decide({ 'x-genops-team': 'ml-platform' }, { yaml: principalsPolicy, principal: 'spiffe://cluster.local/ns/genops/sa/genops-client' }).result).toBe('ALLOWED');
  });

  it('refuses other callers and callers without an identity with x_principal_not_allowed', () => {
    expect(decide({ 'x-genops-team': 'ml-platform' }, { yaml: principalsPolicy, principal: 'spiffe://cluster.local/ns/default/sa/rogue' })).toMatchObject({
      reasonCode: 'x_principal_not_allowed',
      message: 'caller spiffe://cluster.local/ns/default/sa/rogue is not allowed',
    });
    expect(decide({ 'x-genops-team': 'ml-platform' }, { yaml: principalsPolicy })).toMatchObject({ reasonCode: 'x_principal_not_allowed', httpStatus: 403 });
  });

  it('applies per-team principals and tiers', () => {
    const gateway = 'spiffe://cluster.local/ns/api-gateway/sa/gateway';
    expect(decide({ 'x-genops-team': 'finance' }, { yaml: principalsPolicy, principal: gateway })).toMatchObject({ reasonCode: 'x_principal_not_allowed', message: `caller ${gateway} may not act for team finance` });
    const yaml = principalsPolicy.replace('allow: [', 'allow: ["spiffe://cluster.local/ns/finance/sa/*", ');
    const finance = 'spiffe://cluster.local/ns/finance/sa/reports';
    expect(decide({ 'x-genops-team': 'finance', 'x-genops-customer-tier': 'premium' }, { yaml, principal: finance }).result).toBe('ALLOWED');
    expect(decide({ 'x-genops-team': 'finance', 'x-genops-customer-tier': 'basic' }, { yaml, principal: finance })).toMatchObject({ reasonCode: 'x_tier_not_allowed', message: 'team finance may not serve basic customers' });
  });
});

describe('dry-run', () => {
  const policy = (globalMode: string, teamMode: string) => `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: dry }
spec:
  mode: ${globalMode}
  context: { required: [team, project] }
  routes: { default: claude-sonnet }
  teams:
    ml-platform: { models: [claude-haiku], mode: ${teamMode} }
`;

  it('global dry-run decides and reports but never denies', () => {
    const decision = decide({ 'x-genops-team': 'marketing', 'x-genops-project': 'p' }, { yaml: policy('dry-run', 'enforce') });
    expect(decision).toMatchObject({ result: 'WARNING', reasonCode: 'x_team_not_allowed', dryRun: true, message: 'dry-run: team marketing is not allowed to call AI services' });
  });

  it('a dry-run rule warns while an enforced rule after it still denies', () => {
    const yaml = policy('enforce', 'dry-run');
    const warned = decide({ 'x-genops-team': 'ml-platform', 'x-genops-project': 'p', 'x-genops-model': 'gpt-4o' }, { yaml });
    expect(warned).toMatchObject({ result: 'WARNING', reasonCode: 'POLICY_DENY_MODEL', dryRun: true, route: 'claude-sonnet' });
    const denied = decide({ 'x-genops-team': 'ml-platform', 'x-genops-model': 'gpt-4o' }, { yaml });
    expect(denied).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_missing_context' });
  });

  it('an enforced policy with no violations is ALLOWED without a reason code', () => {
    const decision = decide({ 'x-genops-team': 'ml-platform', 'x-genops-project': 'p', 'x-genops-model': 'claude-haiku' }, { yaml: policy('enforce', 'enforce') });
    expect(decision).toMatchObject({ result: 'ALLOWED', reasonCode: undefined, dryRun: false });
  });

  it('an invalid team is refused even when context rules are dry-run: there is no listed team to allow', () => {
    const yaml = `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: dry-context }
spec:
  context: { required: [team], mode: dry-run }
  teams:
    product-team: { models: [claude-haiku] }
`;
    expect(decide({ 'x-genops-team': 'Not_A_Team!', 'x-genops-model': 'claude-opus' }, { yaml })).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_invalid_context', httpStatus: 400 });
    expect(decide({ 'x-genops-team': 'product-team', 'x-genops-project': 'bad project' }, { yaml })).toMatchObject({ result: 'WARNING', reasonCode: 'x_invalid_context', dryRun: true });
  });
});
