import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { createPolicyStore, loadPolicyFile, loadPolicyText, type PolicyStore, type ReloadOutcome } from '../../src/policy/policy-store.js';
import { renderPolicyJsonSchema } from '../../src/policy/write-json-schema.js';

const valid = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata:
  name: team-a
spec:
  teams:
    team-a:
      models: [claude-haiku]
`;

function problemOf(text: string): string {
  try {
    loadPolicyText(text, '/etc/genops/policy.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the policy to be rejected');
}

describe('policy file', () => {
  it('loads the embedded default policy mirroring the service-mesh guide', () => {
    const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
    expect(policy.name).toBe('default');
    expect([...policy.teams.keys()]).toEqual(['ml-platform', 'product-team', 'ml-research', 'data-science']);
    expect(Object.fromEntries(policy.routes.byTier)).toEqual({ premium: 'claude-opus', standard: 'claude-haiku', basic: 'claude-sonnet' });
    expect(policy.routes.default).toBe('claude-sonnet');
    expect(policy.context.required).toEqual(['team', 'customerId', 'project']);
    expect(policy.rateLimits).toMatchObject([{ name: 'per-customer', key: ['customerId'], capacity: 100, refillAmount: 100, refillEveryMs: 60_000 }]);
  });

  it('publishes a JSON Schema generated from the same definition (run `npm run schema` after changing it)', () => {
    const published = readFileSync(new URL('../../deploy/policy.schema.json', import.meta.url), 'utf8');
    expect(published).toBe(renderPolicyJsonSchema());
  });

  // Each rule of the schema, one broken file each: the message names file, line:column, YAML path and problem.
  const broken: [string, string, string][] = [
    ['an unknown key', valid.replace('  teams:', '  teamz: {}\n  teams:'), '/etc/genops/policy.yaml:6:3: spec: unknown key "teamz"'],
    ['an unknown key in a team', valid.replace('models: [claude-haiku]', 'models: [claude-haiku]\n      budget: 5'), '/etc/genops/policy.yaml:9:7: spec.teams.team-a: unknown key "budget"'],
    ['a wrong apiVersion', valid.replace('genops.ai/v1alpha1', 'genops.ai/v2'), '/etc/genops/policy.yaml:1:13: apiVersion: Invalid input: expected "genops.ai/v1alpha1"'],
    ['a missing teams map', valid.slice(0, valid.indexOf('  teams:')) + '  mode: enforce\n', '/etc/genops/policy.yaml:6:3: spec.teams: is required (record)'],
    ['a team name that is not kebab-case', valid.replace('    team-a:', '    Team_A:'), '/etc/genops/policy.yaml:8:7: spec.teams.Team_A: must be kebab-case (lowercase letters, digits and single dashes)'],
    ['a bad mode', valid.replace('spec:\n', 'spec:\n  mode: audit\n'), '/etc/genops/policy.yaml:6:9: spec.mode: Invalid option: expected one of "enforce"|"dry-run"'],
    ['a model pattern with spaces', valid.replace('[claude-haiku]', '["claude haiku"]'), '/etc/genops/policy.yaml:8:16: spec.teams.team-a.models[0]: must be "*", a lowercase model name, or a prefix ending in "*"'],
    ['an unknown tier', valid.replace('spec:\n', 'spec:\n  routes: { byTier: { gold: claude-opus } }\n'), '/etc/genops/policy.yaml:6:23: spec.routes.byTier: unknown key "gold"'],
    ['a bad refill duration', valid + '  rateLimits:\n    - { name: per-customer, key: [customerId], capacity: 10, refill: { amount: 10, every: 1 minute } }\n', '/etc/genops/policy.yaml:10:91: spec.rateLimits[0].refill.every: must be a positive duration such as 500ms, 60s, 1m, 1h or 1d'],
    ['a zero capacity', valid + '  rateLimits:\n    - { name: per-customer, key: [customerId], capacity: 0, refill: { amount: 10, every: 1m } }\n', '/etc/genops/policy.yaml:10:58: spec.rateLimits[0].capacity: Too small: expected number to be >0'],
    ['an unknown rate-limit key dimension', valid + '  rateLimits:\n    - { name: per-customer, key: [ip], capacity: 1, refill: { amount: 1, every: 1m } }\n', '/etc/genops/policy.yaml:10:35: spec.rateLimits[0].key[0]: Invalid option: expected one of "team"|"customerId"'],
    ['a duplicate rate-limit name', valid + '  rateLimits:\n    - { name: per-customer, key: [customerId], capacity: 1, refill: { amount: 1, every: 1m } }\n    - { name: per-customer, key: [team], capacity: 5, refill: { amount: 5, every: 1m } }\n', '/etc/genops/policy.yaml:11:15: spec.rateLimits[1].name: duplicate rate limit name "per-customer": names identify buckets and must be unique'],
    ['a YAML syntax error', 'apiVersion: genops.ai/v1alpha1\nkind: [unclosed\n', '/etc/genops/policy.yaml:3:1: YAML syntax:'],
    ['a duplicate key', valid.replace('kind: GovernancePolicy', 'kind: GovernancePolicy\nkind: GovernancePolicy'), '/etc/genops/policy.yaml:3:1: YAML syntax: Map keys must be unique'],
    ['an empty file', '', '/etc/genops/policy.yaml: (document): must be an object, not null'],
  ];
  it.each(broken)('rejects %s with file, location, YAML path and problem', (_name, text, expected) => {
    expect(problemOf(text)).toContain(expected);
  });

  it('reports every problem of a file at once', () => {
    const text = valid.replace('genops.ai/v1alpha1', 'v2').replace('    team-a:', '    Team_A:');
    const message = problemOf(text);
    expect(message).toContain('apiVersion:');
    expect(message).toContain('spec.teams.Team_A:');
  });
});

describe('policy hot reload', () => {
  let store: PolicyStore | undefined;
  afterEach(() => store?.close());

  function waitFor(outcomes: ReloadOutcome[], predicate: (outcome: ReloadOutcome) => boolean): Promise<ReloadOutcome> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + 5_000;
      const poll = () => {
        const found = outcomes.find(predicate);
        if (found) resolve(found);
        else if (Date.now() > deadline) reject(new Error(`no matching reload among ${JSON.stringify(outcomes.map((outcome) => outcome.result))}`));
        else setTimeout(poll, 20);
      };
      poll();
    });
  }

  it('swaps in a valid edit and keeps the last good policy when a broken file is written', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'genops-policy-')), 'policy.yaml');
    writeFileSync(path, valid);
    const outcomes: ReloadOutcome[] = [];
    store = createPolicyStore({ path, initial: loadPolicyFile(path), onReload: (outcome) => outcomes.push(outcome), pollIntervalMs: 100, debounceMs: 20 });
    expect([...store.current().teams.keys()]).toEqual(['team-a']);

    writeFileSync(path, valid.replace('team-a:\n', 'team-a:\n      description: edited\n').replace('name: team-a', 'name: edited'));
    await waitFor(outcomes, (outcome) => outcome.result === 'success');
    expect(store.current().name).toBe('edited');

    writeFileSync(path, valid.replace('models: [claude-haiku]', 'models: claude-haiku'));
    const failure = await waitFor(outcomes, (outcome) => outcome.result === 'failure');
    expect(failure.result === 'failure' && failure.error.message).toContain(`${path}:8:15: spec.teams.team-a.models: must be an array, not string "claude-haiku"`);
    expect(store.current().name).toBe('edited');
  });

  it('keeps the last good policy when the file disappears', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'genops-policy-')), 'policy.yaml');
    writeFileSync(path, valid);
    store = createPolicyStore({ path: `${path}.missing`, initial: loadPolicyFile(path), pollIntervalMs: 100 });
    const outcome = await store.reload();
    expect(outcome.result).toBe('failure');
    expect(outcome.result === 'failure' && outcome.error.message).toContain('cannot read policy file');
    expect(store.current().name).toBe('team-a');
  });
});
