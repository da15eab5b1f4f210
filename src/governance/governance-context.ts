import type { ContextField, CustomerTier } from '../policy/policy-schema.js';

/** The validated, normalized governance attributes of one request. */
export interface GovernanceContext {
  team?: string;
  customerId?: string;
  project?: string;
  costCenter?: string;
  customerTier?: CustomerTier;
  environment?: string;
  feature?: string;
  model?: string;
}

export interface ContextProblem {
  readonly field: ContextField;
  readonly header: string;
  readonly message: string;
}

/** Reads one request header by its lowercase name. */
export type HeaderLookup = (lowercaseName: string) => string | undefined;

interface FieldRule {
  readonly field: ContextField;
  readonly header: string;
  readonly maxLength: number;
  readonly lowercase: boolean;
  readonly pattern: RegExp;
  readonly expectation: string;
}

const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const IDENTIFIER = /^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$/;
const LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$/;
const MODEL = /^[a-z0-9]([a-z0-9._:/@-]*[a-z0-9])?$/;

export const CONTEXT_RULES: readonly FieldRule[] = [
  { field: 'team', header: 'x-genops-team', maxLength: 63, lowercase: true, pattern: KEBAB, expectation: 'kebab-case (a-z, 0-9, single dashes)' },
  { field: 'customerId', header: 'x-genops-customer-id', maxLength: 128, lowercase: false, pattern: IDENTIFIER, expectation: 'letters, digits, "_" or "-", starting and ending with a letter or digit' },
  { field: 'project', header: 'x-genops-project', maxLength: 128, lowercase: false, pattern: LABEL, expectation: 'letters, digits, ".", "_" or "-", starting and ending with a letter or digit' },
  { field: 'costCenter', header: 'x-genops-cost-center', maxLength: 64, lowercase: false, pattern: LABEL, expectation: 'letters, digits, ".", "_" or "-", starting and ending with a letter or digit' },
  { field: 'customerTier', header: 'x-genops-customer-tier', maxLength: 16, lowercase: true, pattern: /^(premium|standard|basic)$/, expectation: 'one of premium, standard, basic' },
  { field: 'environment', header: 'x-genops-environment', maxLength: 32, lowercase: true, pattern: KEBAB, expectation: 'kebab-case (a-z, 0-9, single dashes)' },
  { field: 'feature', header: 'x-genops-feature', maxLength: 128, lowercase: false, pattern: LABEL, expectation: 'letters, digits, ".", "_" or "-", starting and ending with a letter or digit' },
  { field: 'model', header: 'x-genops-model', maxLength: 128, lowercase: true, pattern: MODEL, expectation: 'a model name: a-z, 0-9, ".", "_", ":", "/", "@" or "-"' },
];

/** The rule a model id follows, from a header or a request body. */
export const MODEL_RULE: FieldRule = CONTEXT_RULES.find((rule) => rule.field === 'model')!;

export const HEADER_OF_FIELD: Readonly<Record<ContextField, string>> = Object.fromEntries(
  CONTEXT_RULES.map((rule) => [rule.field, rule.header]),
) as Record<ContextField, string>;

/**
 * Extracts the governance context from request headers. A header that is
 * absent or blank is missing; a header with a value that breaks its rule is
 * invalid and reported, never silently dropped or truncated.
 */
export function extractGovernanceContext(lookup: HeaderLookup): { context: GovernanceContext; problems: ContextProblem[] } {
  const context: Record<string, string> = {};
  const problems: ContextProblem[] = [];
  for (const rule of CONTEXT_RULES) {
    const raw = lookup(rule.header);
    if (raw === undefined) continue;
    const trimmed = raw.trim();
    if (trimmed === '') continue;
    if (trimmed.length > rule.maxLength) {
      problems.push({ field: rule.field, header: rule.header, message: `${rule.header} is longer than ${rule.maxLength} characters` });
      continue;
    }
    const value = rule.lowercase ? trimmed.toLowerCase() : trimmed;
    if (!rule.pattern.test(value)) {
      problems.push({ field: rule.field, header: rule.header, message: `${rule.header} must be ${rule.expectation}` });
      continue;
    }
    context[rule.field] = value;
  }
  return { context: context as GovernanceContext, problems };
}

const RULE_OF_FIELD = new Map(CONTEXT_RULES.map((rule) => [rule.field, rule]));

/**
 * Validates and normalizes one value for `field` by the same rule its header
 * follows (a value from a JWT claim or a peer identity, say).
 */
export function normalizeContextValue(field: ContextField, raw: string): { value: string } | { problem: string } {
  const rule = RULE_OF_FIELD.get(field)!;
  const trimmed = raw.trim();
  if (trimmed === '') return { problem: 'is empty' };
  if (trimmed.length > rule.maxLength) return { problem: `is longer than ${rule.maxLength} characters` };
  const value = rule.lowercase ? trimmed.toLowerCase() : trimmed;
  return rule.pattern.test(value) ? { value } : { problem: `must be ${rule.expectation}` };
}
