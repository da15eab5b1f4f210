import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type SpanContext } from '@opentelemetry/api';
import type { Decision } from '../governance/decision.js';
import type { ServiceName } from '../telemetry/metrics.js';
import {
  DECISION_SPAN_NAME,
  GENOPS_SPEC_VERSION,
  GenopsAttributes as A,
  GenopsEvents,
  OtelAttributes as O,
  UNKNOWN,
  operationTypeOf,
} from '../telemetry/span-conventions.js';
import { remoteParentOf, type HeaderReader } from '../telemetry/trace-context.js';
import type { Tracing } from '../telemetry/tracer.js';

export interface DecisionSpans {
  /**
   * Records one finished decision as a span (start and end times given, so
   * it is made after the reply is on its way) and returns its context, or
   * undefined when the sampler left it out.
   */
  record(service: ServiceName, decision: Decision, startedAt: number, endedAt: number, headers: HeaderReader | undefined): SpanContext | undefined;
}

const RPC: Partial<Record<ServiceName, { service: string; method: string }>> = {
  authz: { service: 'envoy.service.auth.v3.Authorization', method: 'Check' },
  ext_proc: { service: 'envoy.service.ext_proc.v3.ExternalProcessor', method: 'Process' },
};

const MAX_OPERATION_NAME = 128;
const noHeaders: HeaderReader = () => undefined;

/**
 * GenOps 0.1.0 decision spans. Required attributes are always present: a
 * governance value the request did not carry is "unknown", and
 * genops.environment falls back to the deployment environment of the
 * resource, then "unknown". genops.policy.reason_code is set exactly when the
 * result is not ALLOWED.
 */
export function createDecisionSpans(options: { tracing: Tracing }): DecisionSpans {
  const { tracer, deploymentEnvironment } = options.tracing;
  const defaultEnvironment = deploymentEnvironment ?? UNKNOWN;
  // The event of an allowed decision depends on the policy alone: one frozen object per policy name
  // (the SDK copies it into the event), not one per span.
  const allowedEvents = new Map<string, Readonly<Attributes>>();
  const allowedEventOf = (policyName: string): Readonly<Attributes> => {
    let attributes = allowedEvents.get(policyName);
    if (!attributes) {
      if (allowedEvents.size >= 16) allowedEvents.clear();
      attributes = Object.freeze({ [A.policyResult]: 'ALLOWED', [A.policyName]: policyName });
      allowedEvents.set(policyName, attributes);
    }
    return attributes;
  };
  return {
    record(service, decision, startedAt, endedAt, headers = noHeaders) {
      const parent = remoteParentOf(headers);
      const span = tracer.startSpan(
        DECISION_SPAN_NAME,
        { kind: SpanKind.SERVER, startTime: startedAt },
        parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
      );
      if (!span.isRecording()) {
        span.end(endedAt);
        return undefined;
      }
      const { context } = decision;
      const allowed = decision.result === 'ALLOWED';
      const path = headers(':path');
      // Set one by one on the span: an attributes object built first and handed to setAttributes()
      // was a dictionary-mode object of ~25 keys, 3.5 KB of garbage a span (bench/RESULTS.md, tracing).
      span.setAttribute(A.specVersion, GENOPS_SPEC_VERSION);
      span.setAttribute(A.team, context.team ?? UNKNOWN);
      span.setAttribute(A.project, context.project ?? UNKNOWN);
      span.setAttribute(A.environment, context.environment ?? defaultEnvironment);
      span.setAttribute(A.operationName, operationNameOf(context.feature, headers(':method'), path));
      span.setAttribute(A.operationType, operationTypeOf(path));
      span.setAttribute(A.policyResult, decision.result);
      span.setAttribute(A.policyName, decision.policyName);
      span.setAttribute(A.decisionId, decision.id);
      if (!allowed) {
        span.setAttribute(A.policyReasonCode, decision.reasonCode);
        span.setAttribute(A.policyReason, decision.message);
      }
      if (decision.dryRun) span.setAttribute(A.dryRun, true);
      if (context.customerId !== undefined) span.setAttribute(A.customerId, context.customerId);
      if (context.costCenter !== undefined) span.setAttribute(A.costCenter, context.costCenter);
      if (context.customerTier !== undefined) span.setAttribute(A.customerTier, context.customerTier);
      if (context.feature !== undefined) span.setAttribute(A.feature, context.feature);
      if (context.model !== undefined) span.setAttribute(O.requestModel, context.model);
      if (decision.route !== undefined) span.setAttribute(A.route, decision.route);
      if (decision.principal !== undefined) span.setAttribute(A.principal, decision.principal);
      const limit = decision.rateLimit;
      if (limit) {
        span.setAttribute(A.rateLimitName, limit.name);
        span.setAttribute(A.rateLimitQuota, limit.quota);
        span.setAttribute(A.rateLimitWindowSeconds, limit.windowSeconds);
        span.setAttribute(A.rateLimitRemaining, limit.remaining);
        if (limit.retryAfterSeconds !== undefined) span.setAttribute(A.rateLimitRetryAfterSeconds, limit.retryAfterSeconds);
      }
      const budget = decision.budget;
      if (budget?.status) {
        span.setAttribute(A.budgetName, budget.status.name);
        span.setAttribute(A.budgetAllocated, budget.status.limitNano / 1e9);
        span.setAttribute(A.budgetConsumed, budget.status.consumedNano / 1e9);
        span.setAttribute(A.budgetRemaining, budget.status.remainingNano / 1e9);
        span.setAttribute(A.budgetPeriod, budget.status.periodText);
      }
      const reserved = budget && budget.entries.some((entry) => entry.heldNano > 0);
      if (reserved) {
        span.setAttribute(A.accountingReserved, budget.worstCaseNano / 1e9);
        span.setAttribute(A.accountingUnit, 'USD');
      }
      const rpc = RPC[service];
      if (rpc) {
        span.setAttribute(O.rpcSystem, 'grpc');
        span.setAttribute(O.rpcService, rpc.service);
        span.setAttribute(O.rpcMethod, rpc.method);
      }
      span.addEvent(
        GenopsEvents.policyEvaluated,
        allowed
          ? allowedEventOf(decision.policyName)
          : { [A.policyResult]: decision.result, [A.policyReasonCode]: decision.reasonCode, [A.policyName]: decision.policyName, [A.policyReason]: decision.message },
        endedAt,
      );
      if (reserved) span.addEvent(GenopsEvents.budgetReservation, { [A.budgetName]: budget.entries.filter((entry) => entry.heldNano > 0).map((entry) => entry.name).join(','), [A.accountingReserved]: budget.worstCaseNano / 1e9, [A.accountingUnit]: 'USD' }, endedAt);
      // A denial is a correct answer, not a failure of the service; only a
      // decision the service could not make properly (503) marks the span.
      if (!allowed && decision.httpStatus >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reasonCode ?? 'unavailable' });
      span.end(endedAt);
      return span.spanContext();
    },
  };
}

/** x-genops-feature when the request names one, else "METHOD /path" (no query), else "ai.request". */
function operationNameOf(feature: string | undefined, method: string | undefined, path: string | undefined): string {
  if (feature !== undefined) return feature;
  if (path === undefined || path === '') return 'ai.request';
  const query = path.indexOf('?');
  const bare = query === -1 ? path : path.slice(0, query);
  const name = method ? `${method} ${bare}` : bare;
  return name.length > MAX_OPERATION_NAME ? name.slice(0, MAX_OPERATION_NAME) : name;
}
