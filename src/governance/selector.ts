import type { CompiledSelector } from '../policy/compiled-policy.js';
import type { Decision } from './decision.js';
import { pathReadings } from '../usage/request-path.js';

/** Whether a rate limit's or a budget's selector picks this request (every listed field must match). */
export function selects(selector: CompiledSelector, decision: Decision, path: string | undefined): boolean {
  const { context } = decision;
  if (selector.teams && !(context.team && selector.teams.has(context.team))) return false;
  if (selector.tiers && !(context.customerTier && selector.tiers.has(context.customerTier))) return false;
  if (selector.projects && !(context.project && selector.projects.has(context.project))) return false;
  if (selector.models && !(context.model && selector.models.matches(context.model))) return false;
  if (selector.principals && !(decision.principal && selector.principals.matches(decision.principal))) return false;
  if (selector.paths && !(path && selectsPath(selector.paths, path))) return false;
  return true;
}

/** Any reading of the path an upstream might use (`/V1/…`, `/v1%2F…`) selects: a limit cannot be dodged by spelling. */
function selectsPath(prefixes: readonly string[], path: string): boolean {
  if (prefixes.some((prefix) => path.startsWith(prefix))) return true;
  const readings = pathReadings(path);
  return prefixes.some((prefix) => {
    const lower = prefix.toLowerCase();
    return readings.some((reading) => reading.startsWith(prefix) || reading.startsWith(lower));
  });
}
