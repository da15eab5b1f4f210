import type { CompiledPolicy, CompiledSelector } from '../policy/compiled-policy.js';
import type { PolicyMode } from '../policy/policy-schema.js';
import type { Decision } from './decision.js';
import { selects } from './selector.js';

/** A rule that can only be kept where the service sees the response: a budget (reserve, then settle) or a token limit (charged the usage). */
export interface ResponseRule {
  readonly kind: 'budget' | 'token limit';
  readonly name: string;
}

export interface ResponseRuleViolation {
  readonly message: string;
  readonly mode: PolicyMode;
}

interface RuleRequest {
  readonly path: string | undefined;
  /** False behind forward auth when the model is in the unseen body: a rule selecting by model may select the request. */
  readonly modelKnown: boolean;
}

/**
 * ext_authz sees the request body but never the response, forward auth sees neither: behind them
 * a budget could not be reserved and settled and a token limit never charged, so either would
 * silently admit everything. An AI request such a rule selects is refused there instead
 * (x_ext_proc_required), or let through as a dry-run WARNING when only dry-run / shadow rules
 * select it.
 */
export function responseRuleViolation(policy: CompiledPolicy, decision: Decision, request: RuleRequest & { readonly adapter: string; readonly batch: boolean }): ResponseRuleViolation | undefined {
  // A batch under spec.usage.batches: allow is admitted unreserved and uncharged behind ext_proc too.
  const allowed = request.batch && policy.usage.batches === 'allow';
  const found = selectedRules(policy, decision, request, { budgets: !allowed, tokenLimits: !allowed });
  if (!found) return undefined;
  return {
    message: `${request.adapter} cannot see the response, and ${found.named} ${found.count > 1 ? 'need' : 'needs'} it (budgets are reserved before the call and settled from the response's usage; token limits are charged that usage): send AI API calls they select through Envoy's ext_proc (deploy/envoy/ext-proc.yaml)`,
    mode: found.mode,
  };
}

/**
 * A batch or a background response is billed later, outside the exchange: no adapter sees its
 * usage, so a token limit that selects it could never charge it. Refused like a budget refuses it
 * (x_unreservable_request), unless spec.usage.batches: allow admits batches unchecked.
 */
export function deferredTokenLimitViolation(policy: CompiledPolicy, decision: Decision, request: RuleRequest & { readonly deferred: 'batch' | 'background' }): ResponseRuleViolation | undefined {
  if (request.deferred === 'batch' && policy.usage.batches === 'allow') return undefined;
  const found = selectedRules(policy, decision, request, { budgets: false, tokenLimits: true });
  if (!found) return undefined;
  const what = request.deferred === 'batch' ? 'a batch' : 'a background response (background: true)';
  const allow = request.deferred === 'batch' ? '; spec.usage.batches: allow admits batches uncharged' : '';
  return { message: `${found.named} cannot be charged for ${what}: the provider bills it later, outside this request${allow}`, mode: found.mode };
}

/** The enforced rules that select the request, else the dry-run / shadow ones; undefined when none does. */
function selectedRules(policy: CompiledPolicy, decision: Decision, request: RuleRequest, kinds: { readonly budgets: boolean; readonly tokenLimits: boolean }): { named: string; count: number; mode: PolicyMode } | undefined {
  const enforced: ResponseRule[] = [];
  const dryRun: ResponseRule[] = [];
  const applies = (selector: CompiledSelector | undefined, key: readonly string[]) =>
    (!selector || selects(request.modelKnown ? selector : { ...selector, models: undefined }, decision, request.path)) && hasKey(key, decision, request.path);
  if (kinds.budgets) {
    for (const budget of policy.budgets) {
      if (applies(budget.selector, budget.key)) (budget.mode === 'enforce' ? enforced : dryRun).push({ kind: 'budget', name: budget.name });
    }
  }
  if (kinds.tokenLimits) {
    for (const limit of policy.rateLimits) {
      if (limit.unit === 'tokens' && applies(limit.selector, limit.key)) (limit.shadow ? dryRun : enforced).push({ kind: 'token limit', name: limit.name });
    }
  }
  const rules = enforced.length > 0 ? enforced : dryRun;
  if (rules.length === 0) return undefined;
  return { named: rules.map((rule) => `${rule.kind} ${rule.name}`).join(', '), count: rules.length, mode: enforced.length > 0 ? 'enforce' : 'dry-run' };
}

/** A rule whose key dimension the request lacks does not apply to it (budgets and rate limits alike). */
function hasKey(key: readonly string[], decision: Decision, path: string | undefined): boolean {
  return key.every((dimension) => {
    if (dimension === 'principal') return decision.principal !== undefined;
    if (dimension === 'path') return path !== undefined;
    return (decision.context as Readonly<Record<string, string | undefined>>)[dimension] !== undefined;
  });
}
