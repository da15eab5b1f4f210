import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { isFree, type UsageRecord } from '../governance/usage-accounting.js';
import { GEN_AI_PROVIDER_NAME } from '../usage/ai-api.js';
import { picoToUsdNumber } from '../usage/pricing.js';
import { TOKEN_TYPES, tokensByType } from '../usage/token-usage.js';
import { createBoundedLabel } from '../telemetry/bounded-label.js';
import { createGovernanceLabels } from '../telemetry/governance-labels.js';
import { createCounterChildren, removeSeriesWith } from '../telemetry/labelled-children.js';
import { createHotLogLine } from '../telemetry/hot-log-line.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics, UsageLabel } from '../telemetry/metrics.js';
import {
  GENOPS_SPEC_VERSION,
  GenopsAttributes as A,
  GenopsEvents,
  OtelAttributes as O,
  UNKNOWN,
  USAGE_SPAN_NAME,
  operationTypeOf,
} from '../telemetry/span-conventions.js';
import { remoteParentOf, type HeaderReader } from '../telemetry/trace-context.js';
import type { Tracing } from '../telemetry/tracer.js';

export interface UsageReporter {
  /**
   * Reports one completed AI request: tokens and cost metrics, one usage record in the
   * decision log, and a usage span in the request's trace. `startedAt` and `endedAt` are on
   * the reporter's clock (performance.now()).
   */
  report(record: UsageRecord, headers: HeaderReader, startedAt: number, endedAt: number): void;
}

export interface UsageReporterOptions {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly tracing?: Tracing | undefined;
  readonly customerLabelLimit?: number;
  /** Distinct unpriced models that get a log line (and a label value) of their own. Default 100. */
  readonly unpricedModelLimit?: number;
  /** How long a capped label value must go unused before a new value takes its slot (bounded-label.ts). Default 5 minutes. */
  readonly labelIdleMs?: number;
}

/**
 * Usage records only exist for allowed requests of listed teams, so every label value here
 * comes from a governed request; the values are still bounded like the decision metrics'.
 */
export function createUsageReporter(options: UsageReporterOptions): UsageReporter {
  const { metrics, logger } = options;
  // Cached series children: no label hashing per request (labelled-children.ts).
  const countTokens = createCounterChildren(metrics.tokens);
  const countRecord = createCounterChildren(metrics.usageRecords);
  // A value that lost its slot takes its series with it (bounded-label.ts).
  const governanceLabels = createGovernanceLabels({
    metrics,
    forget: (label, value) => {
      countTokens.forget(label, value);
      metrics.forgetCost(label, value);
    },
    customerLabelLimit: options.customerLabelLimit,
    labelIdleMs: options.labelIdleMs,
  });
  const loggedUnpriced = new Set<string>();
  const unpricedModels = createBoundedLabel(options.unpricedModelLimit ?? 100, {
    minIdleMs: options.labelIdleMs,
    onEvict: (value) => {
      loggedUnpriced.delete(value);
      removeSeriesWith(metrics.unpricedUsage, 'model', value);
      metrics.labelOverflow.inc({ label: 'unpriced_model', outcome: 'evicted' });
    },
    onOverflow: () => metrics.labelOverflow.inc({ label: 'unpriced_model', outcome: 'overflowed' }),
  });
  const usageLine = createHotLogLine(logger, 'info', 'ai request usage');
  const tracer = options.tracing?.tracer;
  const defaultEnvironment = options.tracing?.deploymentEnvironment ?? UNKNOWN;

  return {
    report(record, headers, startedAt, endedAt) {
      const { context, tokens } = record;
      const labels: Partial<Record<UsageLabel, string>> = {};
      governanceLabels.assign(labels, context, record.modelRequested);
      const byType = tokensByType(tokens);
      const tokenLabels: Partial<Record<UsageLabel | 'type', string>> = { ...labels, type: '' };
      for (const type of TOKEN_TYPES) {
        const count = byType[type];
        if (count === 0 && type !== 'input' && type !== 'output') continue;
        tokenLabels.type = type;
        countTokens(tokenLabels, count);
      }
      countRecord({ api: record.api, outcome: record.outcome, estimated: record.estimated ? 'true' : 'false' });
      if (record.cost) metrics.addCost(labels, record.cost.pico);
      else {
        const model = unpricedModels(record.modelServed);
        metrics.unpricedUsage.inc({ model });
        // One line per model (the label's bound bounds the lines too).
        if (!loggedUnpriced.has(model)) {
          loggedUnpriced.add(model);
          logger.warn({ event: 'model_unpriced', model: record.modelServed, model_requested: record.modelRequested, price_table: record.priceTableVersion }, `no price for model ${record.modelServed}: its cost is counted as unknown (genops_usage_unpriced_total)`);
        }
      }

      const span = tracer ? recordSpan(record, headers, startedAt, endedAt) : undefined;
      usageLine({
        event: 'usage',
        decision_id: record.decisionId,
        trace_id: span?.traceId ?? remoteParentOf(headers)?.traceId,
        span_id: span?.spanId,
        api: record.api,
        provider: record.provider,
        team: context.team,
        project: context.project,
        customer_id: context.customerId,
        cost_center: context.costCenter,
        tier: context.customerTier,
        environment: context.environment,
        model_requested: record.modelRequested,
        model_served: record.modelServed,
        stream: record.stream,
        tokens: { input: tokens.input, cached_input: tokens.cachedInput, cache_write: tokens.cacheWrite, output: tokens.output, reasoning: tokens.reasoning },
        cost: record.cost?.usd ?? null,
        currency: record.currency,
        priced_as: record.pricedAs,
        price_table: record.priceTableVersion,
        estimated: record.estimated,
        outcome: record.outcome,
        upstream_status: record.upstreamStatus,
        provider_error: record.providerError,
        budgets: record.reservation?.budgets,
        reserved: record.reservation ? record.reservation.reservedNano / 1e9 : undefined,
      });
    },
  };

  function recordSpan(record: UsageRecord, headers: HeaderReader, startedAt: number, endedAt: number) {
    const parent = remoteParentOf(headers);
    const span = tracer!.startSpan(USAGE_SPAN_NAME, { kind: SpanKind.INTERNAL, startTime: startedAt }, parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT);
    if (!span.isRecording()) {
      span.end(endedAt);
      return undefined;
    }
    const { context, tokens } = record;
    const path = headers(':path');
    // Set one by one: an attributes object of ~30 computed keys is a dictionary-mode object,
    // garbage the size of the span (as in decision-spans.ts).
    span.setAttribute(A.specVersion, GENOPS_SPEC_VERSION);
    span.setAttribute(A.team, context.team ?? UNKNOWN);
    span.setAttribute(A.project, context.project ?? UNKNOWN);
    span.setAttribute(A.environment, context.environment ?? defaultEnvironment);
    span.setAttribute(A.operationName, context.feature ?? record.api);
    span.setAttribute(A.operationType, operationTypeOf(path));
    span.setAttribute(A.policyResult, 'ALLOWED');
    span.setAttribute(A.decisionId, record.decisionId);
    span.setAttribute(A.tokensInput, tokens.input);
    span.setAttribute(A.tokensOutput, tokens.output);
    span.setAttribute(A.tokensTotal, tokens.input + tokens.output);
    span.setAttribute(A.tokensCachedInput, tokens.cachedInput);
    span.setAttribute(A.tokensCacheWrite, tokens.cacheWrite);
    span.setAttribute(A.tokensReasoning, tokens.reasoning);
    span.setAttribute(A.costCurrency, record.currency);
    span.setAttribute(A.costModel, record.modelServed);
    span.setAttribute(A.costProvider, record.provider);
    span.setAttribute(A.priceTableVersion, record.priceTableVersion);
    span.setAttribute(A.usageEstimated, record.estimated);
    span.setAttribute(A.usageOutcome, record.outcome);
    span.setAttribute(O.requestModel, record.modelRequested);
    span.setAttribute(O.responseModel, record.modelServed);
    span.setAttribute(O.providerName, GEN_AI_PROVIDER_NAME[record.provider]);
    span.setAttribute(O.inputTokens, tokens.input);
    span.setAttribute(O.outputTokens, tokens.output);
    if (record.cost) span.setAttribute(A.costTotal, picoToUsdNumber(record.cost.pico));
    if (context.customerId !== undefined) span.setAttribute(A.customerId, context.customerId);
    if (context.costCenter !== undefined) span.setAttribute(A.costCenter, context.costCenter);
    if (context.customerTier !== undefined) span.setAttribute(A.customerTier, context.customerTier);
    if (record.upstreamStatus !== undefined) span.setAttribute(O.responseStatusCode, record.upstreamStatus);
    const { reservation } = record;
    if (reservation) {
      // The reservation made before the call, settled to the actual cost (0 on an upstream error).
      const actual = isFree(record.outcome) ? 0 : record.cost ? picoToUsdNumber(record.cost.pico) : reservation.reservedNano / 1e9;
      const budgets = reservation.budgets.join(',');
      const reserved = reservation.reservedNano / 1e9;
      span.setAttribute(A.budgetName, budgets);
      span.setAttribute(A.accountingReserved, reserved);
      span.setAttribute(A.accountingActual, actual);
      span.setAttribute(A.accountingUnit, 'USD');
      span.addEvent(GenopsEvents.budgetReservation, { [A.budgetName]: budgets, [A.accountingReserved]: reserved, [A.accountingUnit]: 'USD' }, startedAt);
      span.addEvent(GenopsEvents.budgetReconciliation, { [A.budgetName]: budgets, [A.accountingReserved]: reserved, [A.accountingActual]: actual, [A.accountingUnit]: 'USD' }, endedAt);
    }
    span.end(endedAt);
    return span.spanContext();
  }
}
