import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type ServiceName = 'authz' | 'ext_proc' | 'forward_auth';

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'service' | 'decision' | 'reason_code' | 'genops_team' | 'genops_project' | 'genops_tier' | 'model' | 'dry_run'>;
  readonly decisionDuration: Histogram<'service'>;
  readonly policyReloads: Counter<'result'>;
  readonly backendErrors: Counter<'backend' | 'kind'>;
  readonly malformedMessages: Counter<'service'>;
  readonly rateLimitChecks: Counter<'limit' | 'outcome'>;
}

/** Decision latency buckets, in seconds: 50 µs up to 1 s. */
export const DECISION_LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: 'genops_requests_total',
      help: 'Governance decisions, by service, decision, reason code and governance context.',
      labelNames: ['service', 'decision', 'reason_code', 'genops_team', 'genops_project', 'genops_tier', 'model', 'dry_run'],
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
  };
}
