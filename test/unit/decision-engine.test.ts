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

describe('decision engine: the request body names the model on AI paths', () => {
  const ai = (model: string) => ({ request: { api: 'openai.chat' as const, model, stream: false, outputCap: 256, n: 1, inputEstimateTokens: 20, needsIncludeUsage: false } });
  const decideBody = (headers: Record<string, string>, model: string, yaml?: string) => engineFor(yaml).decide({ headers: (name) => headers[name], ai: ai(model) });

  it('authorizes the body model against the team and tier rules, as a family of provider ids', () => {
    expect(decideBody({ ...base, 'x-genops-team': 'product-team' }, 'claude-haiku-4-5-20251001')).toMatchObject({ result: 'ALLOWED', context: { model: 'claude-haiku-4-5-20251001' } });
    expect(decideBody({ ...base, 'x-genops-team': 'product-team' }, 'Claude-Sonnet-4-5')).toMatchObject({ result: 'ALLOWED', context: { model: 'claude-sonnet-4-5' } });
    expect(decideBody({ ...base, 'x-genops-team': 'product-team' }, 'claude-opus-4-1')).toMatchObject({ result: 'BLOCKED', reasonCode: 'POLICY_DENY_MODEL', httpStatus: 403, message: 'team product-team may not use model claude-opus-4-1' });
    // basic tier: gpt-4o-mini yes, gpt-4o (another model with its own price) no.
    expect(decideBody({ ...base, 'x-genops-customer-tier': 'basic' }, 'gpt-4o-mini-2024-07-18').result).toBe('ALLOWED');
    expect(decideBody({ ...base, 'x-genops-customer-tier': 'basic' }, 'gpt-4o-2024-08-06')).toMatchObject({ result: 'BLOCKED', reasonCode: 'POLICY_DENY_MODEL', message: 'basic tier may not use model gpt-4o-2024-08-06' });
  });

  it('never lets a header unlock a model the body does not name', () => {
    const decision = decideBody({ ...base, 'x-genops-team': 'product-team', 'x-genops-model': 'claude-haiku' }, 'claude-opus-4-1');
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_model_mismatch', httpStatus: 400, message: 'x-genops-model names claude-haiku but the request body asks for claude-opus-4-1' });
    // A header may repeat the body's model, or name its family.
    expect(decideBody({ ...base, 'x-genops-model': 'claude-sonnet-4-5' }, 'claude-sonnet-4-5').result).toBe('ALLOWED');
    expect(decideBody({ ...base, 'x-genops-model': 'claude-sonnet' }, 'claude-sonnet-4-5-20250929').result).toBe('ALLOWED');
    expect(decideBody({ ...base, 'x-genops-model': 'gpt-4o' }, 'gpt-4o-mini').reasonCode).toBe('x_model_mismatch');
  });

  it('refuses a body model that is no model id, and a body the adapter could not read, before anything else', () => {
    expect(decideBody(base, 'gpt 4o; drop table')).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_malformed_body', httpStatus: 400 });
    expect(decideBody(base, 'x'.repeat(200)).message).toBe('request body field "model" is longer than 128 characters');
    const tooLarge = engineFor().decide({ headers: (name) => ({ ...base, 'x-genops-team': 'marketing' })[name], ai: { problem: { tooLarge: true, message: 'request body is 9000000 bytes; the limit is 4194304' } } });
    expect(tooLarge).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_body_too_large', httpStatus: 413, message: 'request body is 9000000 bytes; the limit is 4194304' });
  });

  it('carries what the body asked for on the decision, for usage accounting', () => {
    const decision = decideBody(base, 'gpt-4o');
    expect(decision.ai).toMatchObject({ api: 'openai.chat', model: 'gpt-4o', outputCap: 256, inputEstimateTokens: 20 });
  });
});
