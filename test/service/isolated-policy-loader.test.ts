/**
 * The serving process parses its policy in a child process (src/policy/isolated-policy-loader.ts,
 * so zod and yaml never load there): the validated document, the compiled policy and every error
 * must be what the in-process parser gives. Runs the compiled child (dist/), as the service does.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createIsolatedPolicyLoader } from '../../src/policy/isolated-policy-loader.js';
import { parsePolicy } from '../../src/policy/load-policy.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { createRateLimiter } from '../../src/governance/rate-limiting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import type { CompiledPolicy } from '../../src/policy/compiled-policy.js';

const loader = createIsolatedPolicyLoader();
const repo = (path: string) => new URL(`../../${path}`, import.meta.url);

/** Every feature of the schema that carries values of another shape: identity, budgets, prices, paths, response rules, quoted numbers, anchors. */
const RICH = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: rich, description: "ünïcødé ✓ \\"quoted\\"" }
spec:
  mode: enforce
  context: { required: [team, customerId] }
  tiers:
    premium: &all { models: ["*"] }
  teams:
    ml-platform: *all
    product-team: { models: [claude-haiku, gpt-4o-mini] }
  rateLimits:
    - { name: per-customer, key: [customerId], capacity: 1000000000000000, refill: { amount: 2, every: 1500ms } }
  budgets:
    - { name: team-month, key: [team], amount: "12.000000001", period: monthly, timeZone: Europe/Paris }
`;

const SHIPPED = ['deploy/default-policy.yaml', 'deploy/kubernetes/base/policy.yaml', 'deploy/helm/genops-mesh/files/policy.yaml', 'bench/policy-ai-exchange.yaml', 'bench/policy-keys.yaml', 'bench/policy-peers-limits.yaml'];

/** What the decision engine answers for a few requests: the compiled policies must behave the same, not only look alike. */
function decisions(policy: CompiledPolicy): unknown[] {
  const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => 'id' });
  const rateLimiter = createRateLimiter({ store: createMemoryRateLimitStore({ clock: () => 1_700_000_000_000 }), policy: () => policy, observer: { limitChecked: () => undefined, backendFailed: () => undefined } });
  const governor = createGovernor({ engine, rateLimiter });
  return [
    { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'p', 'x-genops-model': 'claude-opus', 'x-genops-customer-tier': 'premium' },
    { 'x-genops-team': 'product-team', 'x-genops-customer-id': 'acme', 'x-genops-project': 'p', 'x-genops-model': 'claude-opus' },
    { 'x-genops-team': 'sales', 'x-genops-customer-id': 'acme' },
  ].map((headers) => {
    const decision = governor.evaluate({ headers: (name) => (headers as Record<string, string>)[name], path: '/v1/chat/completions' });
    return JSON.parse(JSON.stringify(decision, (key, value: unknown) => (key === 'decisionId' || typeof value === 'function' ? undefined : value)));
  });
}

describe('policies parsed in a child process', () => {
  it.each([...SHIPPED.map((path) => [path, readFileSync(repo(path), 'utf8')]), ['a policy with every kind of value', RICH]])('%s: the same document, checksum and decisions as in-process', async (source, text) => {
    const inProcess = parsePolicy(text, source);
    const isolated = await loader.parse(text, source);
    expect(isolated).toStrictEqual(JSON.parse(JSON.stringify(inProcess)));
    expect(isolated).toEqual(inProcess);
    const compiled = await loader.loadText(text, source);
    const local = loadPolicyText(text, source);
    expect(compiled.checksum).toBe(local.checksum);
    expect(compiled.name).toBe(local.name);
    expect(decisions(compiled)).toEqual(decisions(local));
  });

  it.each([
    ['a YAML syntax error', 'spec: [unclosed'],
    ['an unknown key and a missing field', 'apiVersion: genops.ai/v1alpha1\nkind: GovernancePolicy\nmetadata: { name: x }\nspec:\n  mode: enforce\n  tems: {}\n'],
    ['a duplicate key', 'apiVersion: genops.ai/v1alpha1\napiVersion: genops.ai/v1alpha1\n'],
    ['a budget out of range', RICH.replace('"12.000000001"', '"90000000"')],
    ['not a map at all', '- a\n- b\n'],
  ])('%s: the same error, code and message', async (_name, text) => {
    const local = (() => {
      try {
        loadPolicyText(text, 'broken.yaml');
      } catch (error) {
        return error as Error & { code: string };
      }
      throw new Error('the policy loaded in-process');
    })();
    const isolated = await loader.loadText(text, 'broken.yaml').then(() => undefined, (error: unknown) => error as Error & { code: string });
    expect(isolated?.message).toBe(local.message);
    expect(isolated?.code).toBe(local.code);
    expect(isolated?.name).toBe('GenopsError');
  });

  it('a file that cannot be read: the message of the in-process loader', async () => {
    await expect(loader.loadFile('/nonexistent/policy.yaml')).rejects.toThrow(/^\/nonexistent\/policy\.yaml: cannot read policy file: ENOENT/);
  });

  it('a parser that hangs is stopped and reported, and the next parse works', async () => {
    const impatient = createIsolatedPolicyLoader({ timeoutMs: 1 });
    await expect(impatient.loadText(RICH, 'slow.yaml')).rejects.toThrow(/slow\.yaml: the policy parser took longer than 1 ms/);
    expect((await loader.loadText(RICH, 'rich.yaml')).name).toBe('rich');
  });
});
