import type { Decision } from '../governance/decision.js';
import { isAllowed } from '../governance/decision.js';
import { createBoundedLabel } from '../telemetry/bounded-label.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics, ServiceName } from '../telemetry/metrics.js';

export interface DecisionReporter {
  report(service: ServiceName, decision: Decision, startedAt: number): void;
}

/**
 * Turns each decision into a metric sample and a decision-log line. Label
 * values that come from callers are bounded so a hostile client cannot blow
 * up the number of series.
 */
export function createDecisionReporter(options: { metrics: Metrics; logger: Logger; now: () => number }): DecisionReporter {
  const { metrics, logger, now } = options;
  const teamLabel = createBoundedLabel(200);
  const projectLabel = createBoundedLabel(500);
  const modelLabel = createBoundedLabel(100);
  return {
    report(service, decision, startedAt) {
      const { context } = decision;
      metrics.decisionDuration.observe({ service }, (now() - startedAt) / 1000);
      metrics.requests.inc({
        service,
        decision: decision.result,
        reason_code: decision.reasonCode ?? '',
        genops_team: teamLabel(context.team),
        genops_project: projectLabel(context.project),
        genops_tier: context.customerTier ?? '',
        model: modelLabel(context.model),
        dry_run: decision.dryRun ? 'true' : 'false',
      });
      const allowed = isAllowed(decision);
      const level = allowed && !decision.dryRun ? 'debug' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      logger[level]({
        event: 'decision',
        service,
        decision_id: decision.id,
        result: decision.result,
        reason_code: decision.reasonCode,
        message: decision.message,
        dry_run: decision.dryRun,
        team: context.team,
        project: context.project,
        customer_tier: context.customerTier,
        customer_id: context.customerId,
        model: context.model,
        principal: decision.principal,
        route: decision.route,
        policy: decision.policyName,
      }, allowed ? 'request allowed' : 'request denied');
    },
  };
}
