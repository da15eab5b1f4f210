import { describe, expect, it } from 'vitest';
import { extractGovernanceContext } from '../../src/governance/governance-context.js';

const lookupOf = (headers: Record<string, string>) => (name: string) => headers[name];

describe('extractGovernanceContext', () => {
  it('normalizes valid headers: trims, lowercases team, tier, environment and model, keeps ids as sent', () => {
    const { context, problems } = extractGovernanceContext(
      lookupOf({
        'x-genops-team': ' ML-Platform ',
        'x-genops-customer-id': 'Acme_Corp-42',
        'x-genops-project': 'chat.bot-v2',
        'x-genops-cost-center': 'CC-1001',
        'x-genops-customer-tier': 'Premium',
        'x-genops-environment': 'Production',
        'x-genops-feature': 'summarize',
        'x-genops-model': 'Claude-Opus',
      }),
    );
    expect(problems).toEqual([]);
    expect(context).toEqual({
      team: 'ml-platform',
      customerId: 'Acme_Corp-42',
      project: 'chat.bot-v2',
      costCenter: 'CC-1001',
      customerTier: 'premium',
      environment: 'production',
      feature: 'summarize',
      model: 'claude-opus',
    });
  });

  it('treats absent and blank headers as missing, not invalid', () => {
    const { context, problems } = extractGovernanceContext(lookupOf({ 'x-genops-team': '   ', 'x-genops-project': '' }));
    expect(problems).toEqual([]);
    expect(context).toEqual({});
  });

  // One bad-input fixture per validation rule, each asserting the message a caller sees.
  const invalid: [string, string, string][] = [
    ['x-genops-team', 'ml_platform', 'x-genops-team must be kebab-case (a-z, 0-9, single dashes)'],
    ['x-genops-team', 'ml--platform', 'x-genops-team must be kebab-case (a-z, 0-9, single dashes)'],
    ['x-genops-team', 'a'.repeat(64), 'x-genops-team is longer than 63 characters'],
    ['x-genops-customer-id', 'bad id!', 'x-genops-customer-id must be letters, digits, "_" or "-", starting and ending with a letter or digit'],
    ['x-genops-customer-id', '-acme', 'x-genops-customer-id must be letters, digits, "_" or "-", starting and ending with a letter or digit'],
    ['x-genops-customer-id', 'c'.repeat(129), 'x-genops-customer-id is longer than 128 characters'],
    ['x-genops-project', 'chat bot', 'x-genops-project must be letters, digits, ".", "_" or "-", starting and ending with a letter or digit'],
    ['x-genops-cost-center', 'cc/1', 'x-genops-cost-center must be letters, digits, ".", "_" or "-", starting and ending with a letter or digit'],
    ['x-genops-customer-tier', 'gold', 'x-genops-customer-tier must be one of premium, standard, basic'],
    ['x-genops-environment', 'prod env', 'x-genops-environment must be kebab-case (a-z, 0-9, single dashes)'],
    ['x-genops-feature', 'feature<script>', 'x-genops-feature must be letters, digits, ".", "_" or "-", starting and ending with a letter or digit'],
    ['x-genops-model', 'gpt 4', 'x-genops-model must be a model name: a-z, 0-9, ".", "_", ":", "/", "@" or "-"'],
    ['x-genops-team', 'ml-platform,product-team', 'x-genops-team must be kebab-case (a-z, 0-9, single dashes)'],
  ];
  it.each(invalid)('%s: %j is invalid', (header, value, message) => {
    const { context, problems } = extractGovernanceContext(lookupOf({ [header]: value }));
    expect(problems.map((problem) => problem.message)).toEqual([message]);
    expect(problems[0]?.header).toBe(header);
    expect(Object.keys(context)).toEqual([]);
  });
});
