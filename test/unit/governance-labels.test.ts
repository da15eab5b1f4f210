/**
 * The decision and usage metrics label a request the same way: one bounded value set per label,
 * and a team the policy does not list adds no values of its own.
 */
import { describe, expect, it } from 'vitest';
import { createGovernanceLabels, type GovernanceLabel } from '../../src/telemetry/governance-labels.js';
import { createMetrics } from '../../src/telemetry/metrics.js';

function labelsWith(customerLabel: boolean, labelIdleMs?: number) {
  const metrics = createMetrics({ defaultMetrics: false, customerLabel });
  const forgotten: string[] = [];
  const labels = createGovernanceLabels({ metrics, labelIdleMs, forget: (label, value) => forgotten.push(`${label}=${value}`) });
  const assign = (context: Parameters<typeof labels.assign>[1], model: string | undefined, listedTeam?: boolean) => {
    const out: Partial<Record<GovernanceLabel, string>> = {};
    labels.assign(out, context, model, listedTeam);
    return out;
  };
  return { metrics, forgotten, assign };
}

describe('createGovernanceLabels', () => {
  it('labels a listed team by its context and model; the customer label only when opted in', () => {
    const context = { team: 'search', project: 'ranker', customerTier: 'premium' as const, customerId: 'acme' };
    expect(labelsWith(false).assign(context, 'gpt-4o')).toEqual({ genops_team: 'search', genops_project: 'ranker', genops_tier: 'premium', model: 'gpt-4o' });
    expect(labelsWith(true).assign(context, 'gpt-4o')).toEqual({ genops_team: 'search', genops_project: 'ranker', genops_tier: 'premium', model: 'gpt-4o', genops_customer_id: 'acme' });
    expect(labelsWith(false).assign({}, undefined)).toEqual({ genops_team: '', genops_project: '', genops_tier: '', model: '' });
  });

  it('gives an unlisted team no values of its own: its team is _unlisted, unseen values are _other', () => {
    const { assign } = labelsWith(true);
    assign({ team: 'search', project: 'ranker', customerId: 'acme' }, 'gpt-4o');
    expect(assign({ team: 'intruder', project: 'made-up', customerId: 'evil' }, 'made-up-model', false))
      .toEqual({ genops_team: '_unlisted', genops_project: '_other', genops_tier: '', model: '_other', genops_customer_id: '_other' });
    // Values a listed team already brought in keep their name.
    expect(assign({ team: 'intruder', project: 'ranker', customerId: 'acme' }, 'gpt-4o', false))
      .toEqual({ genops_team: '_unlisted', genops_project: 'ranker', genops_tier: '', model: 'gpt-4o', genops_customer_id: 'acme' });
    // The unlisted values took no slot: a listed team still adds them.
    expect(assign({ team: 'search', project: 'made-up' }, 'made-up-model').model).toBe('made-up-model');
  });

  it('hands an evicted value to forget and counts the eviction', async () => {
    const { metrics, forgotten, assign } = labelsWith(false, 0);
    for (let index = 0; index <= 100; index++) assign({ team: 'search' }, `model-${index}`);
    expect(forgotten).toEqual(['model=model-0']);
    const overflow = await metrics.labelOverflow.get();
    expect(overflow.values).toContainEqual(expect.objectContaining({ labels: { label: 'model', outcome: 'evicted' }, value: 1 }));
  });
});
