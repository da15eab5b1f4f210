import { ROOT_CONTEXT, SpanKind, trace, type Attributes } from '@opentelemetry/api';
import { isFree, type UsageRecord } from '../governance/usage-accounting.js';
import { GEN_AI_PROVIDER_NAME } from '../usage/ai-api.js';
import { picoToUsdNumber } from '../usage/pricing.js';
import { TOKEN_TYPES, tokensByType } from '../usage/token-usage.js';
import { createBoundedLabel } from '../telemetry/bounded-label.js';
import { createCounterChildren, removeSeriesWith } from '../telemetry/labelled-children.js';
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
  const bounded = (label: UsageLabel, limit: number) => createBoundedLabel(limit, {
    minIdleMs: options.labelIdleMs,
    onEvict: (value) => {
      countTokens.forget(label, value);
      metrics.forgetCost(label, value);
      metrics.labelOverflow.inc({ label, outcome: 'evicted' });
    },
    onOverflow: () => metrics.labelOverflow.inc({ label, outcome: 'overflowed' }),
  });
  const teamLabel = bounded('genops_team', 200);
  const projectLabel = bounded('genops_project', 500);
  const modelLabel = bounded('model', 100);
  const customerLabel = metrics.customerLabel ? bounded('genops_customer_id', options.customerLabelLimit ?? 100) : undefined;
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
  const tracer = options.tracing?.tracer;
  const defaultEnvironment = options.tracing?.deploymentEnvironment ?? UNKNOWN;

  return {
    report(record, headers, startedAt, endedAt) {
      const { context, tokens } = record;
      const labels: Partial<Record<UsageLabel, string>> = {
        genops_team: teamLabel(context.team),
        genops_project: projectLabel(context.project),
        genops_tier: context.customerTier ?? '',
        model: modelLabel(record.modelRequested),
      };
      if (customerLabel) labels.genops_customer_id = customerLabel(context.customerId);
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
      logger.info({
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
      }, 'ai request usage');
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
    const attributes: Attributes = {
      [A.specVersion]: GENOPS_SPEC_VERSION,
      [A.team]: context.team ?? UNKNOWN,
      [A.project]: context.project ?? UNKNOWN,
      [A.environment]: context.environment ?? defaultEnvironment,
      [A.operationName]: context.feature ?? record.api,
      [A.operationType]: operationTypeOf(path),
      [A.policyResult]: 'ALLOWED',
      [A.decisionId]: record.decisionId,
      [A.tokensInput]: tokens.input,
      [A.tokensOutput]: tokens.output,
      [A.tokensTotal]: tokens.input + tokens.output,
      [A.tokensCachedInput]: tokens.cachedInput,
      [A.tokensCacheWrite]: tokens.cacheWrite,
      [A.tokensReasoning]: tokens.reasoning,
      [A.costCurrency]: record.currency,
      [A.costModel]: record.modelServed,
      [A.costProvider]: record.provider,
      [A.priceTableVersion]: record.priceTableVersion,
      [A.usageEstimated]: record.estimated,
      [A.usageOutcome]: record.outcome,
      [O.requestModel]: record.modelRequested,
      [O.responseModel]: record.modelServed,
      [O.providerName]: GEN_AI_PROVIDER_NAME[record.provider],
      [O.inputTokens]: tokens.input,
      [O.outputTokens]: tokens.output,
    };
    if (record.cost) attributes[A.costTotal] = picoToUsdNumber(record.cost.pico);
    if (context.customerId !== undefined) attributes[A.customerId] = context.customerId;
    if (context.costCenter !== undefined) attributes[A.costCenter] = context.costCenter;
    if (context.customerTier !== undefined) attributes[A.customerTier] = context.customerTier;
    if (record.upstreamStatus !== undefined) attributes[O.responseStatusCode] = record.upstreamStatus;
    const { reservation } = record;
    if (reservation) {
      // The reservation made before the call, settled to the actual cost (0 on an upstream error).
      const actual = isFree(record.outcome) ? 0 : record.cost ? picoToUsdNumber(record.cost.pico) : reservation.reservedNano / 1e9;
      attributes[A.budgetName] = reservation.budgets.join(',');
      attributes[A.accountingReserved] = reservation.reservedNano / 1e9;
      attributes[A.accountingActual] = actual;
      attributes[A.accountingUnit] = 'USD';
      span.addEvent(GenopsEvents.budgetReservation, { [A.budgetName]: reservation.budgets.join(','), [A.accountingReserved]: reservation.reservedNano / 1e9, [A.accountingUnit]: 'USD' }, startedAt);
      span.addEvent(GenopsEvents.budgetReconciliation, { [A.budgetName]: reservation.budgets.join(','), [A.accountingReserved]: reservation.reservedNano / 1e9, [A.accountingActual]: actual, [A.accountingUnit]: 'USD' }, endedAt);
    }
    span.setAttributes(attributes);
    span.end(endedAt);
    return span.spanContext();
  }
}
