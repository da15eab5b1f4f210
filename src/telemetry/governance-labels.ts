import type { GovernanceContext } from '../governance/governance-context.js';
import { createBoundedLabel } from './bounded-label.js';
import type { Metrics, UsageLabel } from './metrics.js';

/** The labels a request's governance context gives a metric (genops_customer_id only when opted in). */
export type GovernanceLabel = UsageLabel;

/** Label value for a team the policy does not list. */
export const UNLISTED_TEAM = '_unlisted';

export interface GovernanceLabels {
  /**
   * Writes the team, project, tier, model and (when on) customer labels of `context` into
   * `labels`. `listedTeam: false` (a team the policy does not list) adds no new values: its
   * team reads `_unlisted`, an unseen project, model or customer `_other`.
   */
  assign(labels: Partial<Record<GovernanceLabel, string>>, context: GovernanceContext, model: string | undefined, listedTeam?: boolean): void;
}

export interface GovernanceLabelsOptions {
  readonly metrics: Pick<Metrics, 'customerLabel' | 'labelOverflow'>;
  /** A value lost its slot: remove the series that carry it. */
  readonly forget: (label: GovernanceLabel, value: string) => void;
  /** Distinct genops_customer_id values before they collapse into "_other". Default 100. */
  readonly customerLabelLimit?: number | undefined;
  /** How long a capped value must go unused before a new value takes its slot (bounded-label.ts). Default 5 minutes. */
  readonly labelIdleMs?: number | undefined;
}

/**
 * The bounded label values shared by the decision and usage metrics: label values come from
 * callers, so each label keeps a capped set of values and a hostile client cannot blow up the
 * number of series.
 */
export function createGovernanceLabels(options: GovernanceLabelsOptions): GovernanceLabels {
  const { metrics, forget } = options;
  const bounded = (label: GovernanceLabel, limit: number) => createBoundedLabel(limit, {
    minIdleMs: options.labelIdleMs,
    onEvict: (value) => {
      forget(label, value);
      metrics.labelOverflow.inc({ label, outcome: 'evicted' });
    },
    onOverflow: () => metrics.labelOverflow.inc({ label, outcome: 'overflowed' }),
  });
  const teamLabel = bounded('genops_team', 200);
  const projectLabel = bounded('genops_project', 500);
  const modelLabel = bounded('model', 100);
  const customerLabel = metrics.customerLabel ? bounded('genops_customer_id', options.customerLabelLimit ?? 100) : undefined;
  return {
    assign(labels, context, model, listedTeam = true) {
      labels.genops_team = listedTeam ? teamLabel(context.team) : context.team === undefined ? '' : UNLISTED_TEAM;
      labels.genops_project = projectLabel(context.project, listedTeam);
      labels.genops_tier = context.customerTier ?? '';
      labels.model = modelLabel(model, listedTeam);
      if (customerLabel) labels.genops_customer_id = customerLabel(context.customerId, listedTeam);
    },
  };
}
