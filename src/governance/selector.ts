import type { CompiledSelector } from '../policy/compiled-policy.js';
import type { Decision } from './decision.js';

/** Whether a rate limit's or a budget's selector picks this request (every listed field must match). */
export function selects(selector: CompiledSelector, decision: Decision, path: string | undefined): boolean {
  const { context } = decision;
  if (selector.teams && !(context.team && selector.teams.has(context.team))) return false;
  if (selector.tiers && !(context.customerTier && selector.tiers.has(context.customerTier))) return false;
  if (selector.projects && !(context.project && selector.projects.has(context.project))) return false;
  if (selector.models && !(context.model && selector.models.matches(context.model))) return false;
  if (selector.principals && !(decision.principal && selector.principals.matches(decision.principal))) return false;
  if (selector.paths && !(path && selector.paths.some((prefix) => path.startsWith(prefix)))) return false;
  return true;
}
