import { createHash } from 'node:crypto';
import { compileIdentity, type CompiledIdentity } from './compiled-identity.js';
import { parseDurationMs } from './duration.js';
import { GenopsError } from '../errors/genops-error.js';
import { createAiPathMatcher, DEFAULT_AI_PATHS, type AiPathMatcher } from '../usage/ai-api.js';
import { compileHeadersOnly } from '../usage/request-path.js';
import { createModelMatcher, type ModelMatcher } from '../usage/model-pattern.js';
import { compileToolPrices, createPriceTable, DEFAULT_PRICE_TABLE, type PriceEntry, type PriceTable } from '../usage/pricing.js';
import { createGlobMatcher, normalizePrincipal, type GlobMatcher } from './glob-matcher.js';
import { ROLLING_SLOTS, type BudgetPeriod } from './budget-periods.js';
import type {
  BudgetDimension,
  ContextField,
  CustomerTier,
  PolicyDocument,
  CountedTokens,
  PolicyMode,
  RateLimitDimension,
  RateLimitUnit,
} from './policy-schema.js';

/** The policy in the shape the decision engine evaluates quickly. */
export interface CompiledPolicy {
  readonly name: string;
  /** sha256 of the source text: identical reloads are recognised and skipped. */
  readonly checksum: string;
  readonly mode: PolicyMode;
  readonly context: { readonly required: readonly ContextField[]; readonly mode: PolicyMode };
  readonly principals: { readonly allow: GlobMatcher; readonly mode: PolicyMode } | undefined;
  readonly routes: CompiledRoutes;
  readonly tiers: ReadonlyMap<CustomerTier, { readonly models: ModelMatcher; readonly mode: PolicyMode }>;
  readonly teams: ReadonlyMap<string, CompiledTeam>;
  readonly rateLimits: readonly CompiledRateLimit[];
  readonly budgets: readonly CompiledBudget[];
  readonly usage: CompiledUsage;
  readonly prices: PriceTable;
  /** pico-USD per call of server-side tools. */
  readonly toolPrices: ReadonlyMap<string, bigint>;
  /** Bindings of the context to verified identity; undefined = headers are taken as sent. */
  readonly identity: CompiledIdentity | undefined;
}

export interface CompiledBudget {
  readonly name: string;
  readonly key: readonly BudgetDimension[];
  readonly selector: CompiledSelector | undefined;
  /** The amount per account and period, in nano-USD. */
  readonly limitNano: number;
  readonly amountUsd: string;
  readonly period: BudgetPeriod;
  /** "monthly (UTC)", "rolling 24h". */
  readonly periodText: string;
  readonly warnAt: number | undefined;
  readonly downgrade: { readonly at: number; readonly model: string } | undefined;
  readonly maxOutputTokens: number;
  readonly failureMode: 'open' | 'closed';
  readonly mode: PolicyMode;
  /** What a request whose usage never came is charged: its hold (the worst case) or the estimate. */
  readonly unknownUsage: 'hold' | 'estimate';
}

export interface CompiledUsage {
  readonly paths: AiPathMatcher;
  readonly maxRequestBodyBytes: number;
  readonly injectStreamUsage: boolean;
  /** spec.usage.headersOnly prefixes, normalized and lowercased, without a trailing slash. */
  readonly headersOnly: readonly string[];
  /** Azure OpenAI deployment name (lowercased) → the model it serves. */
  readonly azureDeployments: ReadonlyMap<string, string>;
  /** What the service cannot check about a batch (its cost, an OpenAI Batch's models): refused unless allowed. */
  readonly batches: 'refuse' | 'allow';
}

export interface CompiledRoutes {
  readonly byTier: ReadonlyMap<CustomerTier, string>;
  readonly default: string | undefined;
}

export interface CompiledTeam {
  readonly name: string;
  readonly models: ModelMatcher;
  readonly tiers: ReadonlySet<CustomerTier> | undefined;
  readonly principals: GlobMatcher | undefined;
  readonly routes: CompiledRoutes;
  readonly mode: PolicyMode;
}

export interface CompiledRateLimit {
  readonly name: string;
  /**
   * "<name>:<dimension>+<dimension>" ("…#tokens" for a token limit): a limit keeps its buckets
   * across reloads while this stays the same, and a limit switched between units starts afresh.
   */
  readonly scope: string;
  readonly key: readonly RateLimitDimension[];
  readonly unit: RateLimitUnit;
  /** What a token limit counts (undefined for a request limit). */
  readonly counts: CountedTokens | undefined;
  readonly capacity: number;
  readonly refillAmount: number;
  readonly refillEveryMs: number;
  readonly selector: CompiledSelector | undefined;
  readonly shadow: boolean;
  readonly failureMode: 'open' | 'closed';
}

export interface CompiledSelector {
  readonly teams: ReadonlySet<string> | undefined;
  readonly tiers: ReadonlySet<CustomerTier> | undefined;
  readonly projects: ReadonlySet<string> | undefined;
  readonly models: ModelMatcher | undefined;
  readonly principals: GlobMatcher | undefined;
  readonly paths: readonly string[] | undefined;
}

export function compilePolicy(document: PolicyDocument, sourceText: string, source = 'policy'): CompiledPolicy {
  const { spec } = document;
  const globalMode = spec.mode;
  const effective = (ruleMode: PolicyMode | undefined): PolicyMode =>
    globalMode === 'dry-run' ? 'dry-run' : (ruleMode ?? 'enforce');
  const globalRoutes = compileRoutes(spec.routes, undefined);

  const teams = new Map<string, CompiledTeam>();
  for (const [name, team] of Object.entries(spec.teams)) {
    teams.set(name, {
      name,
      models: createModelMatcher(team.models),
      tiers: team.tiers ? new Set(team.tiers) : undefined,
      principals: team.principals ? createGlobMatcher(team.principals, normalizePrincipal) : undefined,
      routes: compileRoutes(team.routes ?? {}, globalRoutes),
      mode: effective(team.mode),
    });
  }

  const tiers = new Map<CustomerTier, { models: ModelMatcher; mode: PolicyMode }>();
  for (const [tier, rule] of Object.entries(spec.tiers) as [CustomerTier, { models: string[]; mode?: PolicyMode }][]) {
    tiers.set(tier, { models: createModelMatcher(rule.models), mode: effective(rule.mode) });
  }

  return {
    name: document.metadata.name,
    checksum: createHash('sha256').update(sourceText).digest('hex'),
    mode: globalMode,
    context: { required: [...new Set<ContextField>(spec.context.required)], mode: effective(spec.context.mode) },
    principals: spec.principals
      ? { allow: createGlobMatcher(spec.principals.allow, normalizePrincipal), mode: effective(spec.principals.mode) }
      : undefined,
    routes: globalRoutes,
    tiers,
    teams,
    identity: compileIdentity(spec.identity, effective),
    rateLimits: spec.rateLimits.map((rule) => {
      const refillEveryMs = parseDurationMs(rule.refill.every)!;
      const selector = rule.selector;
      return {
        name: rule.name,
        scope: `${rule.name}:${rule.key.join('+')}${rule.unit === 'tokens' ? '#tokens' : ''}`,
        key: rule.key,
        unit: rule.unit,
        counts: rule.unit === 'tokens' ? (rule.tokens ?? 'total') : undefined,
        capacity: rule.capacity,
        refillAmount: rule.refill.amount,
        refillEveryMs,
        shadow: rule.shadow || globalMode === 'dry-run',
        failureMode: rule.failureMode,
        selector: compileSelector(selector),
      };
    }),
    budgets: spec.budgets.map((rule): CompiledBudget => ({
      name: rule.name,
      key: rule.key,
      selector: compileSelector(rule.selector),
      limitNano: usdToNano(rule.amount),
      amountUsd: String(rule.amount),
      period: rule.period === 'daily' || rule.period === 'weekly' || rule.period === 'monthly'
        ? { kind: 'calendar', unit: rule.period, timeZone: rule.timeZone }
        : { kind: 'rolling', windowMs: parseDurationMs(rule.period)!, slots: ROLLING_SLOTS },
      periodText: rule.period === 'daily' || rule.period === 'weekly' || rule.period === 'monthly' ? `${rule.period} (${rule.timeZone})` : `rolling ${rule.period}`,
      warnAt: rule.warnAt,
      downgrade: rule.downgrade,
      maxOutputTokens: rule.maxOutputTokens,
      failureMode: rule.failureMode,
      mode: effective(rule.mode),
      unknownUsage: rule.unknownUsage,
    })),
    usage: {
      paths: createAiPathMatcher({ ...DEFAULT_AI_PATHS, ...spec.usage.paths }),
      maxRequestBodyBytes: spec.usage.maxRequestBodyBytes,
      injectStreamUsage: spec.usage.injectStreamUsage,
      headersOnly: compileHeadersOnly(spec.usage.headersOnly),
      // Azure deployment names are case-insensitive: keys are compared lowercased.
      azureDeployments: new Map(Object.entries(spec.usage.azureDeployments).map(([name, model]) => [name.toLowerCase(), model])),
      batches: spec.usage.batches,
    },
    prices: compilePrices(document, source),
    toolPrices: compileToolPrices(document.spec.pricing.tools),
  };
}

function compilePrices(document: PolicyDocument, source: string): PriceTable {
  const { pricing } = document.spec;
  if (pricing.defaults && pricing.models.length === 0 && pricing.version === undefined) return DEFAULT_PRICE_TABLE;
  const own: PriceEntry[] = pricing.models.map(({ model, source: origin, contextWindow, maxOutput, ...price }) => ({ model, price, ...(origin !== undefined ? { source: origin } : {}), ...(contextWindow !== undefined ? { contextWindow } : {}), ...(maxOutput !== undefined ? { maxOutput } : {}) }));
  // Policy entries first: for the same pattern, the policy's price replaces the shipped one.
  const ownPatterns = new Set(own.map((entry) => entry.model.toLowerCase()));
  const entries = pricing.defaults ? [...own, ...DEFAULT_PRICE_TABLE.entries.filter((entry) => !ownPatterns.has(entry.model.toLowerCase()))] : own;
  const version = pricing.version ?? (pricing.defaults ? `${DEFAULT_PRICE_TABLE.version}+${document.metadata.name}` : document.metadata.name);
  try {
    return createPriceTable(entries, version);
  } catch (error) {
    throw new GenopsError('invalid_policy', `${source}: spec.pricing: ${(error as Error).message}`, { cause: error });
  }
}

function compileSelector(selector: PolicyDocument['spec']['rateLimits'][number]['selector']): CompiledSelector | undefined {
  if (!selector) return undefined;
  return {
    teams: selector.teams ? new Set(selector.teams) : undefined,
    tiers: selector.tiers ? new Set(selector.tiers) : undefined,
    projects: selector.projects ? new Set(selector.projects) : undefined,
    models: selector.models ? createModelMatcher(selector.models) : undefined,
    principals: selector.principals ? createGlobMatcher(selector.principals, normalizePrincipal) : undefined,
    paths: selector.paths,
  };
}

/** USD (a decimal string or a number, at most 9 decimals) as integer nano-USD. */
export function usdToNano(amount: string | number): number {
  const text = typeof amount === 'number' ? (Number.isInteger(amount) ? String(amount) : amount.toFixed(9)) : amount;
  const [whole = '0', fraction = ''] = text.split('.');
  return Number(whole) * 1e9 + Number((fraction + '000000000').slice(0, 9));
}

function compileRoutes(
  routes: { byTier?: Partial<Record<CustomerTier, string>> | undefined; default?: string | undefined },
  fallback: CompiledRoutes | undefined,
): CompiledRoutes {
  const byTier = new Map<CustomerTier, string>(fallback?.byTier ?? []);
  for (const [tier, route] of Object.entries(routes.byTier ?? {}) as [CustomerTier, string][]) byTier.set(tier, route);
  return { byTier, default: routes.default ?? fallback?.default };
}
