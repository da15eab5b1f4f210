import type { SpanContext } from '@opentelemetry/api';
import type { Decision } from '../governance/decision.js';
import { isAllowed } from '../governance/decision.js';
import { MODEL_RULE } from '../governance/governance-context.js';
import { createGovernanceLabels } from '../telemetry/governance-labels.js';
import { createCounterChildren, createHistogramChildren } from '../telemetry/labelled-children.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics, RequestLabel, ServiceName } from '../telemetry/metrics.js';
import { remoteParentOf, type HeaderReader } from '../telemetry/trace-context.js';
import type { Tracing } from '../telemetry/tracer.js';
import { createDecisionSpans } from './decision-spans.js';

const UNLISTED_TEAM_REASONS = new Set<string | undefined>(['x_team_not_allowed']);

export interface DecisionReporter {
  /**
   * Reports one decision: a metric sample, a span (when tracing is on) and a
   * decision-log line (denials and dry-run warnings at info, allows at debug).
   * `headers` are the request headers the decision was made on; they carry
   * the request's trace context (traceparent, b3) and are never logged.
   */
  report(service: ServiceName, decision: Decision, startedAt: number, headers?: HeaderReader): void;
}

export interface DecisionReporterOptions {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Milliseconds on the clock `startedAt` was read from (performance.now() in the service). */
  readonly now: () => number;
  /** Absent when tracing is off (OTEL_SDK_DISABLED=true): no span work at all. */
  readonly tracing?: Tracing | undefined;
  /** Distinct genops_customer_id label values before they collapse into "_other" (when the label is on). Default 100. */
  readonly customerLabelLimit?: number;
  /** How long a capped label value must go unused before a new value takes its slot (bounded-label.ts). Default 5 minutes. */
  readonly labelIdleMs?: number;
}

/**
 * Turns each decision into a metric sample, a span and a decision-log line.
 * Label values that come from callers are bounded so a hostile client cannot
 * blow up the number of series. Nothing here waits: spans are queued for a
 * batch export, log lines go to pino's asynchronous destination.
 */
export function createDecisionReporter(options: DecisionReporterOptions): DecisionReporter {
  const { metrics, logger, now } = options;
  const countRequest = createCounterChildren(metrics.requests);
  // A value that lost its slot takes its series with it (bounded-label.ts).
  const governanceLabels = createGovernanceLabels({
    metrics,
    forget: (label, value) => countRequest.forget(label, value),
    customerLabelLimit: options.customerLabelLimit,
    labelIdleMs: options.labelIdleMs,
  });
  const spans = options.tracing ? createDecisionSpans({ tracing: options.tracing }) : undefined;
  const observeDuration = createHistogramChildren(metrics.decisionDuration);
  return {
    report(service, decision, startedAt, headers) {
      const endedAt = now();
      const { context } = decision;
      observeDuration({ service }, (endedAt - startedAt) / 1000);
      // Only requests from a team the policy lists may add new label values: a
      // client inventing team, project or model names cannot fill the series budget.
      const listedTeam = context.team !== undefined && !UNLISTED_TEAM_REASONS.has(decision.reasonCode);
      const labels: Partial<Record<RequestLabel, string>> = {
        service,
        decision: decision.result,
        reason_code: decision.reasonCode ?? '',
        dry_run: decision.dryRun ? 'true' : 'false',
      };
      // On an AI path the body's model is the model; x-genops-model only names one without a body.
      governanceLabels.assign(labels, context, decision.ai ? bodyModelLabel(decision.ai.model) : context.model, listedTeam);
      countRequest(labels);

      const span = spans?.record(service, decision, startedAt, endedAt, headers);

      const allowed = isAllowed(decision);
      const level = allowed && !decision.dryRun ? 'debug' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      // Without a span of its own, the line still names the request's trace.
      const trace: SpanContext | undefined = span ?? (headers ? remoteParentOf(headers) : undefined);
      logger[level]({
        event: 'decision',
        service,
        decision_id: decision.id,
        trace_id: trace?.traceId,
        span_id: span?.spanId,
        result: decision.result,
        reason_code: decision.reasonCode,
        message: decision.message,
        dry_run: decision.dryRun,
        team: context.team,
        project: context.project,
        tier: context.customerTier,
        customer_id: context.customerId,
        environment: context.environment,
        model: context.model,
        principal: decision.principal,
        route: decision.route,
        rate_limit: decision.rateLimit?.name,
        identity: decision.identity,
        policy: decision.policyName,
        duration_ms: Math.round((endedAt - startedAt) * 1000) / 1000,
      }, allowed ? 'request allowed' : 'request denied');
    },
  };
}

/** The body's model as a label value: lowercased like the policy reads it; one the model rule refuses is `_invalid`, never a label of its own. */
function bodyModelLabel(model: string): string {
  const value = model.trim().toLowerCase();
  return value.length <= MODEL_RULE.maxLength && MODEL_RULE.pattern.test(value) ? value : '_invalid';
}
