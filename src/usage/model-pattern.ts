/**
 * Model patterns, as the policy writes them in team and tier model lists,
 * selectors and pricing. Case-insensitive.
 *
 * - `*` alone matches every model.
 * - A pattern containing `*` is a glob: `*` matches any run of characters (`claude-*-4-5`).
 * - Any other pattern is a model FAMILY: it matches the id itself and the id followed by
 *   version segments only — each `-` then a segment that starts with a digit, or `latest`.
 *   So `claude-sonnet` matches `claude-sonnet-4-5` and `claude-sonnet-4-5-20250929`,
 *   `gpt-4o` matches `gpt-4o-2024-08-06` but never `gpt-4o-mini` (another model, another price),
 *   `o4-mini` matches `o4-mini-2025-04-16`, and `claude-3-5-haiku` matches `claude-3-5-haiku-latest`.
 * - An Amazon Bedrock id is also matched as the model it names (canonicalModelId):
 *   `us.anthropic.claude-sonnet-4-5-20250929-v1:0` is `claude-sonnet-4-5-20250929` to every pattern,
 *   besides matching patterns written in Bedrock's own form (`anthropic.claude-*`); a Vertex AI
 *   id `claude-sonnet-4-5@20250929` is `claude-sonnet-4-5-20250929`.
 */
export interface ModelMatcher {
  readonly matchesAll: boolean;
  matches(model: string): boolean;
}

export function createModelMatcher(patterns: readonly string[]): ModelMatcher {
  const families = new Set<string>();
  const globs: RegExp[] = [];
  let matchesAll = false;
  for (const raw of patterns) {
    const pattern = raw.trim().toLowerCase();
    if (pattern === '*') matchesAll = true;
    else if (pattern.includes('*')) globs.push(modelGlobToRegExp(pattern));
    else if (pattern.length > 0) families.add(pattern);
  }
  return {
    matchesAll,
    matches(model) {
      if (matchesAll) return true;
      const id = model.trim().toLowerCase();
      if (families.size > 0) {
        // Walk from the full id down through its trailing version segments: O(segments) set look-ups.
        for (const candidate of modelFamilyCandidates(id)) if (families.has(candidate)) return true;
      }
      if (globs.length > 0) {
        const canonical = canonicalModelId(id);
        for (const glob of globs) if (glob.test(id) || (canonical !== id && glob.test(canonical))) return true;
      }
      return false;
    },
  };
}

/**
 * The family patterns that match `model`, most specific first: the lowercased id itself,
 * then the id without each trailing version segment in turn
 * (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5-20250929`, `claude-sonnet-4-5`, `claude-sonnet-4`, `claude-sonnet`).
 */
export function modelFamilyCandidates(model: string): string[] {
  const id = model.trim().toLowerCase();
  const canonical = canonicalModelId(id);
  return canonical === id ? versionCandidates(id) : [...versionCandidates(id), ...versionCandidates(canonical)];
}

function versionCandidates(id: string): string[] {
  let candidate = id;
  const candidates = [candidate];
  for (;;) {
    const shorter = withoutLastVersionSegment(candidate);
    if (shorter === undefined) return candidates;
    candidates.push(shorter);
    candidate = shorter;
  }
}

const EXACT = 2_000_000;
const FAMILY = 1_000_000;
const GLOB = 1;

/**
 * Specificity for "most specific wins" (pricing, selectors). Higher is more specific:
 * the exact id (`gpt-4o-2024-08-06`) > a longer family (`claude-sonnet-4-5`) > a shorter
 * family (`claude-sonnet`) > a glob, ranked by its count of literal characters > `*`.
 * Returns undefined when the pattern does not match the model.
 */
export function modelPatternSpecificity(pattern: string, model: string): number | undefined {
  const id = model.trim().toLowerCase();
  const canonical = canonicalModelId(id);
  const own = specificityOf(pattern, id);
  if (canonical === id) return own;
  const asCanonical = specificityOf(pattern, canonical);
  if (own === undefined) return asCanonical;
  return asCanonical === undefined ? own : Math.max(own, asCanonical);
}

function specificityOf(pattern: string, id: string): number | undefined {
  const normalizedPattern = pattern.trim().toLowerCase();
  if (normalizedPattern === '*') return 0;
  if (normalizedPattern.includes('*')) {
    if (!modelGlobToRegExp(normalizedPattern).test(id)) return undefined;
    return GLOB + normalizedPattern.replaceAll('*', '').length;
  }
  if (normalizedPattern.length === 0) return undefined;
  if (id === normalizedPattern) return EXACT + normalizedPattern.length;
  return familyMatches(normalizedPattern, id) ? FAMILY + normalizedPattern.length : undefined;
}

/** `family` and `id` lowercased. */
function familyMatches(family: string, id: string): boolean {
  if (!id.startsWith(family)) return false;
  if (id.length === family.length) return true;
  if (id.charCodeAt(family.length) !== DASH) return false;
  for (const segment of id.slice(family.length + 1).split('-')) if (!isVersionSegment(segment)) return false;
  return true;
}

function withoutLastVersionSegment(id: string): string | undefined {
  const dash = id.lastIndexOf('-');
  if (dash <= 0) return undefined;
  return isVersionSegment(id.slice(dash + 1)) ? id.slice(0, dash) : undefined;
}

const DASH = 0x2d;

function isVersionSegment(segment: string): boolean {
  if (segment === 'latest') return true;
  const first = segment.charCodeAt(0);
  return first >= 0x30 && first <= 0x39;
}

/** A lowercased glob pattern as an anchored RegExp (`*` = any run of characters). */
export function modelGlobToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 's');
}

/**
 * The model an Amazon Bedrock model id names, lowercased; any other id is returned as it is.
 * Bedrock wraps the model in a provider prefix and a version suffix, optionally a cross-region
 * inference profile's geography prefix, or an ARN of a foundation model or system inference
 * profile: `arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0`,
 * `us.anthropic.claude-sonnet-4-5-20250929-v1:0` and `anthropic.claude-sonnet-4-5-20250929-v1:0` all
 * name `claude-sonnet-4-5-20250929`. Ids Bedrock generates (application inference profiles,
 * provisioned and custom models) name no model: they stay as they are, for the policy to list.
 */
export function canonicalModelId(model: string): string {
  let id = model.trim().toLowerCase();
  // The common case first (every OpenAI, Anthropic and Gemini id): nothing to unwrap.
  const dot = id.indexOf('.');
  if (!id.includes('@') && !id.startsWith('arn:') && (dot === -1 || !BEDROCK_PREFIXES.has(id.slice(0, dot)))) return id;
  // Vertex AI names a Claude version after an '@': claude-sonnet-4-5@20250929.
  const vertex = VERTEX_VERSION.exec(id);
  if (vertex) return `${vertex[1]}-${vertex[2]}`;
  const arn = BEDROCK_ARN.exec(id);
  if (arn) id = arn[1]!;
  const geography = BEDROCK_GEOGRAPHY.exec(id);
  const rest = geography ? id.slice(geography[0].length) : id;
  const provider = BEDROCK_PROVIDER.exec(rest);
  if (!provider) return arn ? id : model.trim().toLowerCase();
  const named = rest.slice(provider[0].length).replace(BEDROCK_VERSION, '');
  return named.length > 0 ? named : id;
}

const VERTEX_VERSION = /^([a-z0-9][a-z0-9.-]*)@(\d+)$/;
const BEDROCK_ARN = /^arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d*:(?:foundation-model|inference-profile)\/(.+)$/;
const BEDROCK_GEOGRAPHY = /^(?:us|eu|apac|us-gov|global|jp|au|ca)\./;
const BEDROCK_PROVIDER = /^(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|twelvelabs)\./;
/** `-v1:0`, `-v2`, a bare `:0`, and a provisioned context-size suffix such as `:200k`. */
const BEDROCK_PREFIXES: ReadonlySet<string> = new Set(['us', 'eu', 'apac', 'us-gov', 'global', 'jp', 'au', 'ca', 'anthropic', 'amazon', 'meta', 'mistral', 'cohere', 'ai21', 'deepseek', 'openai', 'qwen', 'writer', 'twelvelabs']);
const BEDROCK_VERSION = /(?:-v\d+(?::\d+)?|:\d+)(?::\d+k)?$/;
