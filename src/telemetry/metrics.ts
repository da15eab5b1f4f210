import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createRuntimeMetrics } from './runtime-metrics.js';

export type ServiceName = 'authz' | 'ext_proc' | 'forward_auth';

/** Labels of genops_requests_total; genops_customer_id exists only when opted in (MetricsOptions.customerLabel). */
export type RequestLabel = 'service' | 'decision' | 'reason_code' | 'genops_team' | 'genops_project' | 'genops_tier' | 'model' | 'dry_run' | 'genops_customer_id';
/** Labels of genops_cost_total and genops_tokens_total (plus `type` on tokens). */
export type UsageLabel = 'genops_team' | 'genops_project' | 'genops_tier' | 'model' | 'genops_customer_id';
export type SpanDropReason = 'queue_full' | 'export_failed';

export interface Metrics {
  readonly registry: Registry;
  /** True when genops_customer_id is a label of the request, cost and token counters. */
  readonly customerLabel: boolean;
  readonly requests: Counter<RequestLabel>;
  /** USD, from priced token usage: exact sums (pico-USD) per series, converted once per scrape. Add with addCost. */
  readonly cost: Counter<UsageLabel>;
  addCost(labels: Partial<Record<UsageLabel, string>>, picoUsd: bigint): void;
  readonly tokens: Counter<UsageLabel | 'type'>;
  /** Completed AI requests by API, outcome and whether their tokens are estimated. */
  readonly usageRecords: Counter<'api' | 'outcome' | 'estimated'>;
  /** AI requests whose model has no price: counted, never priced at 0. */
  readonly unpricedUsage: Counter<'model'>;
  readonly decisionDuration: Histogram<'service'>;
  readonly policyReloads: Counter<'result'>;
  readonly backendErrors: Counter<'backend' | 'kind'>;
  /** Exceptions on a budget or rate-limit path that were not the backend's (the rule's failure mode applied). */
  readonly internalErrors: Counter<'component'>;
  readonly malformedMessages: Counter<'service'>;
  /** Metering streams (observed metering) naming an exchange this process does not hold. */
  readonly meteringUnmatched: Counter<never>;
  /** Event streams metered across replicas (shared-metering.ts), by outcome. */
  readonly meteringHandoffs: Counter<'outcome'>;
  readonly rateLimitChecks: Counter<'limit' | 'outcome'>;
  /** Budget decisions: reserved, warned, downgraded, blocked, unavailable, settled, released. */
  readonly budgetDecisions: Counter<'budget' | 'outcome'>;
  readonly budgetSpent: Gauge<'budget' | 'key'>;
  readonly budgetReserved: Gauge<'budget' | 'key'>;
  readonly budgetLimit: Gauge<'budget' | 'key'>;
  readonly budgetOvershoot: Counter<'budget'>;
  readonly spansExported: Counter<never>;
  readonly spansDropped: Counter<'reason'>;
  /** Capped label values (bounded-label.ts): `evicted` = an idle value gave its slot (and its series) to a new one; `overflowed` = a sample counted as `_other`. */
  readonly labelOverflow: Counter<'label' | 'outcome'>;
  /** Removes the genops_cost_total series whose `label` is `value` (a capped value that lost its slot). */
  forgetCost(label: UsageLabel, value: string): void;
}

export interface MetricsOptions {
  /** Process and Node.js runtime metrics (process_*, nodejs_*, genops_gc_pause_seconds, genops_eventloop_delay_seconds). Default true. */
  readonly defaultMetrics?: boolean;
  /** Adds the genops_customer_id label (opt-in: the caller caps its values). Default false. */
  readonly customerLabel?: boolean;
}

/** Decision latency buckets, in seconds: 50 µs up to 1 s. */
export const DECISION_LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/**
 * Every metric the service exports, on its own registry. Label sets are
 * fixed here; label values from callers are bounded where they are set
 * (see bounded-label.ts), so the number of series is bounded by construction.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    createRuntimeMetrics({ registry });
  }
  const customerLabel = options.customerLabel ?? false;
  const customer = customerLabel ? (['genops_customer_id'] as const) : [];
  const usageLabels: UsageLabel[] = ['genops_team', 'genops_project', 'genops_tier', 'model', ...customer];
  const exactCost = new Map<string, { labels: Partial<Record<UsageLabel, string>>; pico: bigint }>();
  const metrics: Metrics = {
    registry,
    customerLabel,
    requests: new Counter({
      name: 'genops_requests_total',
      help: 'Governance decisions, by service, decision, reason code and governance context.',
      labelNames: ['service', 'decision', 'reason_code', 'genops_team', 'genops_project', 'genops_tier', 'model', 'dry_run', ...customer],
      registers: [registry],
    }),
    cost: new Counter({
      name: 'genops_cost_total',
      help: 'Priced cost of AI requests in USD, by governance context and model.',
      labelNames: usageLabels,
      registers: [registry],
      // Sums are kept exact (integer pico-USD) and converted to a float only here, so millions of
      // small additions never drift.
      collect() {
        this.reset();
        for (const { labels, pico } of exactCost.values()) this.inc(labels, Number(pico) / 1e12);
      },
    }),
    addCost(labels, picoUsd) {
      const key = usageLabels.map((label) => labels[label] ?? '').join('\u0000');
      const entry = exactCost.get(key);
      if (entry) entry.pico += picoUsd;
      else exactCost.set(key, { labels: { ...labels }, pico: picoUsd });
    },
    tokens: new Counter({
      name: 'genops_tokens_total',
      help: 'LLM tokens by type (input: every billed prompt token; cached_input and cache_write: parts of input; output: every output token; reasoning: part of output), governance context and model.',
      labelNames: ['type', ...usageLabels],
      registers: [registry],
    }),
    usageRecords: new Counter({
      name: 'genops_usage_records_total',
      help: 'Completed AI requests by API, outcome (completed, ended_without_usage, interrupted, no_response, upstream_error, not_sent) and estimated (true when the provider never reported usage).',
      labelNames: ['api', 'outcome', 'estimated'],
      registers: [registry],
    }),
    unpricedUsage: new Counter({
      name: 'genops_usage_unpriced_total',
      help: 'AI requests whose model matches no price in the price table (cost unknown, not zero).',
      labelNames: ['model'],
      registers: [registry],
    }),
    decisionDuration: new Histogram({
      name: 'genops_decision_duration_seconds',
      help: 'Time to decide one request, from message received to reply written.',
      labelNames: ['service'],
      buckets: DECISION_LATENCY_BUCKETS,
      registers: [registry],
    }),
    policyReloads: new Counter({
      name: 'genops_policy_reloads_total',
      help: 'Policy hot reloads by result (success, failure).',
      labelNames: ['result'],
      registers: [registry],
    }),
    backendErrors: new Counter({
      name: 'genops_backend_errors_total',
      help: 'Errors talking to a backend (redis, otlp), by kind.',
      labelNames: ['backend', 'kind'],
      registers: [registry],
    }),
    meteringUnmatched: new Counter({
      name: 'genops_metering_unmatched_total',
      help: 'ext_proc metering streams (observability_mode) naming an AI exchange this process did not decide or already settled: its usage is not counted here.',
      registers: [registry],
    }),
    meteringHandoffs: new Counter({
      name: 'genops_metering_handoffs_total',
      help: 'Event streams metered by another replica than the deciding one, by outcome: adopted (settled there from the handoff), refused (the handoff did not verify), lost (settled by the other side), abandoned (the shared store never decided: left to the hold expiry).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    internalErrors: new Counter({
      name: 'genops_internal_errors_total',
      help: 'Exceptions on a budget or rate-limit path that were not a backend failure; the rule\'s failureMode decided the request.',
      labelNames: ['component'],
      registers: [registry],
    }),
    malformedMessages: new Counter({
      name: 'genops_malformed_messages_total',
      help: 'gRPC messages from Envoy that could not be processed.',
      labelNames: ['service'],
      registers: [registry],
    }),
    rateLimitChecks: new Counter({
      name: 'genops_rate_limit_checks_total',
      help: 'Rate-limit checks by limit and outcome (ok, over_limit, shadow_over_limit, backend_error).',
      labelNames: ['limit', 'outcome'],
      registers: [registry],
    }),
    budgetDecisions: new Counter({
      name: 'genops_budget_decisions_total',
      help: 'Budget decisions by budget and outcome (reserved, warned, downgraded, blocked, unavailable, settled, released).',
      labelNames: ['budget', 'outcome'],
      registers: [registry],
    }),
    budgetSpent: new Gauge({
      name: 'genops_budget_spent_usd',
      // Each worker (GENOPS_WORKERS) reads the same shared account: aggregate by max, not sum.
      aggregator: 'max',
      help: 'Settled spend of a budget account in its current period, USD (accounts this replica has seen, capped).',
      labelNames: ['budget', 'key'],
      registers: [registry],
    }),
    budgetReserved: new Gauge({
      name: 'genops_budget_reserved_usd',
      aggregator: 'max',
      help: 'Money held by reservations of requests still running, USD.',
      labelNames: ['budget', 'key'],
      registers: [registry],
    }),
    budgetLimit: new Gauge({
      name: 'genops_budget_limit_usd',
      aggregator: 'max',
      help: 'The amount a budget account may spend per period, USD.',
      labelNames: ['budget', 'key'],
      registers: [registry],
    }),
    budgetOvershoot: new Counter({
      name: 'genops_budget_overshoot_total',
      help: 'Requests that cost more than their reservation (a provider that ignored the output cap).',
      labelNames: ['budget'],
      registers: [registry],
    }),
    spansExported: new Counter({
      name: 'genops_spans_exported_total',
      help: 'Decision spans the OTLP collector accepted.',
      registers: [registry],
    }),
    labelOverflow: new Counter({
      name: 'genops_metric_label_overflow_total',
      help: 'Capped metric label values, by label and outcome: evicted (an idle value gave its slot and its series to a new one), overflowed (a sample counted as _other because every slot was in use).',
      labelNames: ['label', 'outcome'],
      registers: [registry],
    }),
    forgetCost(label, value) {
      for (const [key, entry] of exactCost) if (entry.labels[label] === value) exactCost.delete(key);
    },
    spansDropped: new Counter({
      name: 'genops_spans_dropped_total',
      help: 'Decision spans lost: queue_full (the export queue was full) or export_failed (the collector did not accept the batch).',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
  // Series with a known, closed set of label values start at 0, so that rate()
  // and increase() in alert rules see their first increment.
  for (const result of ['success', 'failure']) metrics.policyReloads.inc({ result }, 0);
  for (const reason of ['queue_full', 'export_failed'] satisfies SpanDropReason[]) metrics.spansDropped.inc({ reason }, 0);
  return metrics;
}
