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

/**
 * ext_authz sees the request body but never the response, forward auth sees neither: behind them
 * a budget could not be reserved and settled and a token limit never charged, so either would
 * silently admit everything. An AI request such a rule selects is refused there instead
 * (x_ext_proc_required), or let through as a dry-run WARNING when only dry-run / shadow rules
 * select it. `modelKnown` false (forward auth, the model in the unseen body): a rule selecting by
 * model may select the request, so it counts.
 */
export function responseRuleViolation(policy: CompiledPolicy, decision: Decision, request: { readonly path: string | undefined; readonly adapter: string; readonly modelKnown: boolean; readonly batch: boolean }): ResponseRuleViolation | undefined {
  const enforced: ResponseRule[] = [];
  const dryRun: ResponseRule[] = [];
  const applies = (selector: CompiledSelector | undefined, key: readonly string[]) =>
    (!selector || selects(request.modelKnown ? selector : { ...selector, models: undefined }, decision, request.path)) && hasKey(key, decision, request.path);
  // A batch under spec.usage.batches: allow is admitted unreserved behind ext_proc too.
  if (!(request.batch && policy.usage.batches === 'allow')) {
    for (const budget of policy.budgets) {
      if (applies(budget.selector, budget.key)) (budget.mode === 'enforce' ? enforced : dryRun).push({ kind: 'budget', name: budget.name });
    }
  }
  // A batch's tokens are billed later, outside the exchange: no adapter charges them.
  if (!request.batch) {
    for (const limit of policy.rateLimits) {
      if (limit.unit === 'tokens' && applies(limit.selector, limit.key)) (limit.shadow ? dryRun : enforced).push({ kind: 'token limit', name: limit.name });
    }
  }
  const rules = enforced.length > 0 ? enforced : dryRun;
  if (rules.length === 0) return undefined;
  const named = rules.map((rule) => `${rule.kind} ${rule.name}`).join(', ');
  return {
    message: `${request.adapter} cannot see the response, and ${named} ${rules.length > 1 ? 'need' : 'needs'} it (budgets are reserved before the call and settled from the response's usage; token limits are charged that usage): send AI API calls they select through Envoy's ext_proc (deploy/envoy/ext-proc.yaml)`,
    mode: enforced.length > 0 ? 'enforce' : 'dry-run',
  };
}

/** A rule whose key dimension the request lacks does not apply to it (budgets and rate limits alike). */
function hasKey(key: readonly string[], decision: Decision, path: string | undefined): boolean {
  return key.every((dimension) => {
    if (dimension === 'principal') return decision.principal !== undefined;
    if (dimension === 'path') return path !== undefined;
    return (decision.context as Readonly<Record<string, string | undefined>>)[dimension] !== undefined;
  });
}
