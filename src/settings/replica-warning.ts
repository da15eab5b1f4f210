import type { CompiledPolicy } from '../policy/compiled-policy.js';

/**
 * With budgets in memory every replica keeps its own ledger: N replicas let an account spend N
 * times its amount. The process cannot count its copies (a Deployment's replicas, an autoscaler,
 * a second host), so more than one is assumed possible unless the operator says otherwise
 * (GENOPS_SINGLE_REPLICA=true). The line names the budgets that are split.
 */
export function inMemoryBudgetWarning(options: { redisUrl: string | undefined; singleReplica: boolean; policy: CompiledPolicy }): { message: string; budgets: string[] } | undefined {
  if (options.redisUrl !== undefined || options.singleReplica || options.policy.budgets.length === 0) return undefined;
  const budgets = options.policy.budgets.map((budget) => budget.name);
  return {
    budgets,
    message: `budgets are kept in memory (GENOPS_REDIS_URL is unset): each replica has its own budget, so N replicas let an account spend N times its amount (${budgets.join(', ')}); set GENOPS_REDIS_URL to share them, or GENOPS_SINGLE_REPLICA=true if this is the only replica`,
  };
}
