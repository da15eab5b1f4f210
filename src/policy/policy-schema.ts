/**
 * The one definition of the policy file. It validates YAML at load time and
 * generates the published JSON Schema (deploy/policy.schema.json), so the two
 * can never disagree.
 */
import { z } from 'zod';
import { AI_APIS, type AiApi } from '../usage/ai-api.js';
import { ROLLING_SLOTS } from './budget-periods.js';
import { DURATION_PATTERN, parseDurationMs } from './duration.js';
import { identitySchema } from './identity-schema.js';

export const POLICY_API_VERSION = 'genops.ai/v1alpha1';
export const POLICY_KIND = 'GovernancePolicy';

const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;

export const CUSTOMER_TIERS = ['premium', 'standard', 'basic'] as const;
export const CONTEXT_FIELDS = [
  'team',
  'customerId',
  'project',
  'costCenter',
  'customerTier',
  'environment',
  'feature',
  'model',
] as const;
export const RATE_LIMIT_DIMENSIONS = [...CONTEXT_FIELDS, 'principal', 'path'] as const;

const mode = z
  .enum(['enforce', 'dry-run'])
  .describe('enforce: deny what the rule forbids. dry-run: decide, log and count, never deny.');
const tier = z.enum(CUSTOMER_TIERS);
const teamName = z.string().regex(KEBAB, 'must be kebab-case (lowercase letters, digits and single dashes)');
const routeName = z
  .string()
  .regex(/^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,62})$/, 'must be 1-63 letters, digits, ".", "_" or "-"')
  .describe('Value of x-genops-route (an Istio VirtualService subset, typically).');
const modelPattern = z
  .string()
  .regex(/^(\*|[a-z0-9][a-z0-9._:/-]*\*?)$/, 'must be "*", a lowercase model name, or a prefix ending in "*"')
  .describe('A model family such as "claude-sonnet" (matches the id itself and its versions: claude-sonnet-4-5, claude-sonnet-4-5-20250929, but not claude-sonnet-lite), "*" for any, or a prefix glob such as "claude-*".');
const principalPattern = z
  .string()
  .min(1)
  .describe('SPIFFE id of the caller, e.g. spiffe://cluster.local/ns/api-gateway/sa/gateway; "*" matches any run of characters; the spiffe:// prefix is optional.');
const duration = z
  .string()
  .regex(DURATION_PATTERN, 'must be a positive duration such as 500ms, 60s, 1m, 1h or 1d')
  .describe('Duration: a positive integer with unit ms, s, m, h or d.');

const routesSchema = z.strictObject({
  byTier: z.partialRecord(tier, routeName).optional().describe('Route per customer tier.'),
  default: routeName.optional().describe('Route when no tier route applies.'),
});

const teamSchema = z.strictObject({
  description: z.string().optional(),
  models: z.array(modelPattern).default(['*']).describe('Models this team may call (the request body\'s model on AI paths).'),
  tiers: z.array(tier).optional().describe('Customer tiers this team may serve; absent = any.'),
  principals: z.array(principalPattern).optional().describe('Callers (mTLS peers) allowed to act for this team; absent = any.'),
  routes: routesSchema.optional().describe('Overrides of the global routes for this team.'),
  mode: mode.optional(),
});

const tierSchema = z.strictObject({
  models: z.array(modelPattern).describe('Models customers of this tier may use.'),
  mode: mode.optional(),
});

const selectorSchema = z.strictObject({
  teams: z.array(teamName).optional(),
  tiers: z.array(tier).optional(),
  projects: z.array(z.string().min(1)).optional(),
  models: z.array(modelPattern).optional(),
  principals: z.array(principalPattern).optional(),
  paths: z.array(z.string().startsWith('/')).optional().describe('Path prefixes.'),
});

export const RATE_LIMIT_UNITS = ['requests', 'tokens'] as const;
export const COUNTED_TOKENS = ['total', 'input', 'output'] as const;

const rateLimitSchema = z
  .strictObject({
    name: z.string().regex(KEBAB, 'must be kebab-case'),
    key: z.array(z.enum(RATE_LIMIT_DIMENSIONS)).min(1).describe('Dimensions whose values make the bucket key.'),
    unit: z
      .enum(RATE_LIMIT_UNITS)
      .default('requests')
      .describe('requests: each request takes one token. tokens: the bucket holds LLM tokens; a request is admitted while it is positive and charged its billed tokens once the response reports them (the bucket may go into debt, at most one capacity).'),
    tokens: z
      .enum(COUNTED_TOKENS)
      .optional()
      .describe('With unit tokens, which billed tokens count: total (default: input, cached and cache-write included, plus output, reasoning included), input or output.'),
    capacity: z.number().int().positive().describe('Bucket size: the burst allowed (requests, or tokens with unit tokens).'),
    refill: z.strictObject({
      amount: z.number().int().positive(),
      every: duration,
    }),
    selector: selectorSchema.optional().describe('Which requests this limit applies to; absent = all.'),
    shadow: z.boolean().default(false).describe('Count what would be limited, never deny.'),
    failureMode: z.enum(['open', 'closed']).default('open').describe('When the shared backend is unreachable: open admits, closed denies.'),
  })
  .superRefine((limit, context) => {
    if (limit.tokens !== undefined && limit.unit !== 'tokens') {
      context.addIssue({ code: 'custom', path: ['tokens'], message: `tokens: ${limit.tokens} picks what a token limit counts; it needs unit: tokens (this limit counts requests)` });
    }
  });

const aiPath = z
  .string()
  .regex(/^\/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*(?:\{(?:model|deployment)\}[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$/, 'must be a URL path starting with "/" (no query string), with at most one {model} or {deployment} placeholder')
  .describe('Path of the API; a request path matches when it equals it or ends with it after a prefix such as /openai. A {model} placeholder takes the model from the path (Gemini, Bedrock); {deployment} takes an Azure OpenAI deployment.');

const usageSchema = z
  .strictObject({
    paths: z
      .partialRecord(z.enum(AI_APIS as [AiApi, ...AiApi[]]), z.array(aiPath).min(1))
      .optional()
      .describe('AI API paths per API, replacing that API\'s defaults (e.g. openai.chat: /v1/chat/completions, azure.chat: /openai/deployments/{deployment}/chat/completions, gemini.generate: /v1beta/models/{model}:generateContent, bedrock.converse: /model/{model}/converse; the README lists them all).'),
    azureDeployments: z
      .record(z.string().min(1).max(256), z.string().regex(/^[a-z0-9][a-z0-9._:/-]*$/, 'must be a lowercase model id such as gpt-4o-2024-08-06'))
      .default({})
      .describe('Azure OpenAI deployment name → the model it serves. The model rules, budgets and prices apply to that model; a deployment not listed is taken as a model of its own name. The body\'s model is ignored, as Azure ignores it.'),
    batches: z
      .enum(['refuse', 'allow'])
      .default('refuse')
      .describe('Batch APIs: what the service cannot check about a batch. refuse: under an enforced budget a batch is refused (x_unreservable_request: it is billed later, so nothing can be reserved), and an OpenAI Batch (its models are inside an uploaded file) is refused for a team or tier with a model list (x_unreadable_model). allow: both pass, unreserved and uncounted.'),
    maxRequestBodyBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(4 * 1024 * 1024)
      .describe('Largest request body the service reads on an AI path; a bigger one is refused with 413. Keep Envoy\'s buffer limit at least this large.'),
    injectStreamUsage: z
      .boolean()
      .default(true)
      .describe('Turn on stream_options.include_usage in OpenAI Chat Completions stream requests that do not ask for it, so their usage can be counted (ext_proc only).'),
    // Deny by default (issue 20): a request with a body the service cannot read is refused unless listed here.
    headersOnly: z
      .array(
        z.strictObject({
          prefix: z
            .string()
            .regex(/^\/[A-Za-z0-9._~%!$&'()*+,=:@/-]*$/, 'must be a URL path starting with "/" (no query string, no ";")')
            .refine((prefix) => !/(^|\/)\.{1,2}(\/|$)/.test(prefix) && !/%2f|%5c/i.test(prefix), 'must not contain "." or ".." segments or an encoded slash')
            .describe('Path prefix, matched on whole segments from the start of the path (case-insensitive, after the path is normalized).'),
          description: z.string().max(200).optional(),
        }),
      )
      .default([])
      .describe('Path prefixes governed on headers only (team, tier, rate limits; no model rules, no budgets), e.g. /v1/files. Any other request with a body that is not an AI API the service reads is refused with 403 x_unknown_ai_api.'),
  })
  .describe('Reading AI traffic: which paths carry AI API calls and how their bodies are read.');

const price = z
  .union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal number such as "2.50"')])
  .describe('USD per million tokens.');
const priceEntrySchema = z.strictObject({
  model: modelPattern,
  input: price,
  cachedInput: price.optional().describe('Cached (cache-read) input tokens; absent = the input price.'),
  cacheWrite: price.optional().describe('Cache-write input tokens; absent = the input price.'),
  output: price.describe('Output tokens, reasoning included.'),
  source: z.string().optional().describe('Where the price comes from.'),
  cacheWrite1h: price.optional().describe('1-hour cache writes (Anthropic cache_control ttl 1h); absent = the shipped figure for the pattern, else the cacheWrite price.'),
  longContext: z
    .strictObject({ above: z.number().int().positive(), input: price, output: price, cachedInput: price.optional(), cacheWrite: price.optional(), cacheWrite1h: price.optional() })
    .optional()
    .describe('Prices of the whole request when its input passes `above` tokens.'),
  priority: z
    .strictObject({ input: price, output: price, cachedInput: price.optional() })
    .optional()
    .describe('Prices under service_tier priority; absent = the shipped figure for the pattern, else 2× the prices above.'),
  contextWindow: z.number().int().positive().optional().describe('Most input tokens one call reads; bounds inputs the body does not carry (absent = the shipped figure for the pattern).'),
  maxOutput: z.number().int().positive().optional().describe('Most output tokens one call produces.'),
});
const pricingSchema = z
  .strictObject({
    defaults: z.boolean().default(true).describe('Start from the shipped price table (entries below win over it); false = only the entries below.'),
    version: z.string().min(1).max(64).optional().describe('Names this price table in usage records; default: the shipped table\'s date, plus "+<policy name>" when the policy adds prices.'),
    models: z.array(priceEntrySchema).default([]).describe('Prices per model pattern; the most specific pattern that matches wins.'),
    tools: z
      .record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'must be a tool name such as web_search'), price)
      .optional()
      .describe('USD per call of server-side tools (web_search, web_fetch, file_search, code_interpreter, code_execution, …); entries win over the shipped ones.'),
  })
  .describe('Token prices in USD per million tokens.');

const BUDGET_DIMENSIONS = ['team', 'customerId', 'project', 'costCenter', 'customerTier', 'environment', 'feature', 'model', 'principal'] as const;
const usd = z
  .union([z.number().positive(), z.string().regex(/^\d+(\.\d{1,9})?$/, 'must be a decimal amount such as "500" or "12.50" (at most 9 decimals)')])
  .describe('USD.');
const percent = z.number().gt(0).lt(100);
const budgetSchema = z
  .strictObject({
    name: z.string().regex(KEBAB, 'must be kebab-case'),
    description: z.string().optional(),
    key: z.array(z.enum(BUDGET_DIMENSIONS)).min(1).describe('Governance fields whose values make the budget account (one budget per team, per customer, …).'),
    selector: selectorSchema.optional().describe('Which requests spend from this budget; absent = all AI requests.'),
    amount: usd
      .refine((value) => Number(value) >= 1e-9 && Number(value) <= 9_000_000, 'must be between 0.000000001 and 9000000 USD (budgets count in nano-dollars)')
      .describe('What one account may spend per period, in USD.'),
    period: z
      .union([z.enum(['daily', 'weekly', 'monthly']), z.string().regex(DURATION_PATTERN, 'must be daily, weekly, monthly or a rolling duration such as 24h or 7d')])
      .describe('Calendar period (daily, weekly from Monday, monthly) in timeZone, or a rolling window such as 24h.'),
    timeZone: z.string().default('UTC').describe('IANA time zone of calendar periods, e.g. Europe/Berlin.'),
    warnAt: percent.optional().describe('Percent spent (with reservations) past which responses carry X-Budget-Warning.'),
    downgrade: z
      .strictObject({
        at: percent.describe('Percent spent past which requests go to the cheaper model.'),
        model: z.string().regex(/^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$/, 'must be a model id').describe('The cheaper model (checked against the team and tier rules like any other).'),
      })
      .optional(),
    maxOutputTokens: z.number().int().positive().default(4096).describe('The output cap set on a request that names none is what the remaining budget can pay for, at most this.'),
    failureMode: z.enum(['open', 'closed']).default('open').describe('When the shared ledger is unreachable: open admits (and records spend when it can), closed refuses with 503.'),
    unknownUsage: z
      .enum(['hold', 'estimate'])
      .default('hold')
      .describe('What a request whose usage the provider never told (a cut stream, a stream without usage, a timeout) is charged: hold = its reservation, the worst case (a true bound); estimate = the characters ÷ 4 estimate.'),
    mode: mode.optional(),
  })
  .superRefine((budget, context) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: budget.timeZone });
    } catch {
      context.addIssue({ code: 'custom', path: ['timeZone'], message: `unknown time zone "${budget.timeZone}" (use an IANA name such as UTC or Europe/Berlin)` });
    }
    if (budget.warnAt !== undefined && budget.downgrade && budget.warnAt > budget.downgrade.at) {
      context.addIssue({ code: 'custom', path: ['warnAt'], message: `warnAt (${budget.warnAt}%) must not be above downgrade.at (${budget.downgrade.at}%): thresholds go warn, downgrade, then block at 100%` });
    }
    const windowMs = parseDurationMs(budget.period);
    if (windowMs !== undefined && windowMs % ROLLING_SLOTS !== 0) {
      context.addIssue({ code: 'custom', path: ['period'], message: `a rolling window is counted in ${ROLLING_SLOTS} equal slots of whole milliseconds, and ${budget.period} (${windowMs} ms) cannot be cut into them: use a multiple of ${ROLLING_SLOTS} ms, such as 24s, 24m, 1h, 24h or 7d` });
    }
  });

export const policySchema = z
  .strictObject({
    apiVersion: z.literal(POLICY_API_VERSION),
    kind: z.literal(POLICY_KIND),
    metadata: z.strictObject({
      name: z.string().regex(KEBAB, 'must be kebab-case'),
      description: z.string().optional(),
    }),
    spec: z.strictObject({
      mode: mode.default('enforce'),
      context: z
        .strictObject({
          required: z.array(z.enum(CONTEXT_FIELDS)).default(['team']),
          mode: mode.optional(),
        })
        .default({ required: ['team'] }),
      principals: z
        .strictObject({
          allow: z.array(principalPattern).min(1),
          mode: mode.optional(),
        })
        .optional()
        .describe('Global allow-list of callers; absent = any caller.'),
      routes: routesSchema.default({}),
      tiers: z.partialRecord(tier, tierSchema).default({}),
      teams: z
        .record(teamName, teamSchema)
        .describe('Teams allowed to call AI services; a team not listed is refused.'),
      usage: usageSchema.default({ maxRequestBodyBytes: 4 * 1024 * 1024, injectStreamUsage: true, azureDeployments: {}, batches: 'refuse', headersOnly: [] }),
      pricing: pricingSchema.default({ defaults: true, models: [] }),
      budgets: z
        .array(budgetSchema)
        .default([])
        .superRefine((budgets, context) => {
          const seen = new Set<string>();
          budgets.forEach((budget, index) => {
            if (seen.has(budget.name)) context.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate budget name "${budget.name}": names identify accounts and must be unique` });
            seen.add(budget.name);
          });
        })
        .describe('Spending limits in USD per key and period: reserved before each AI call, settled after it.'),
      rateLimits: z
        .array(rateLimitSchema)
        .default([])
        .superRefine((limits, context) => {
          const seen = new Set<string>();
          limits.forEach((limit, index) => {
            if (seen.has(limit.name)) context.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate rate limit name "${limit.name}": names identify buckets and must be unique` });
            seen.add(limit.name);
          });
        }),
      identity: identitySchema.optional().describe('Binds the governance context to verified JWT claims and the mTLS peer; absent = headers are taken as sent.'),
    }),
  })
  .describe('genops-mesh governance policy');

export type PolicyDocument = z.output<typeof policySchema>;
export type CustomerTier = (typeof CUSTOMER_TIERS)[number];
export type ContextField = (typeof CONTEXT_FIELDS)[number];
export type PolicyMode = z.output<typeof mode>;
export type RateLimitDimension = (typeof RATE_LIMIT_DIMENSIONS)[number];
export type RateLimitRule = z.output<typeof rateLimitSchema>;
export type RateLimitUnit = (typeof RATE_LIMIT_UNITS)[number];
export type CountedTokens = (typeof COUNTED_TOKENS)[number];
export type UsageSettings = z.output<typeof usageSchema>;
export type BudgetRule = z.output<typeof budgetSchema>;
export type BudgetDimension = (typeof BUDGET_DIMENSIONS)[number];
export type PricingSettings = z.output<typeof pricingSchema>;

export function policyJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(policySchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
}
