/** The AI APIs whose bodies the service reads, and how request paths map to them. */
export type AiApi =
  | 'openai.chat'
  | 'openai.responses'
  | 'openai.embeddings'
  | 'openai.completions'
  | 'openai.batches'
  | 'azure.chat'
  | 'azure.responses'
  | 'azure.embeddings'
  | 'azure.completions'
  | 'anthropic.messages'
  | 'anthropic.batches'
  | 'gemini.generate'
  | 'gemini.stream'
  | 'bedrock.converse'
  | 'bedrock.converse-stream'
  | 'bedrock.invoke'
  | 'bedrock.invoke-stream'
  | 'vertex.anthropic'
  | 'vertex.anthropic-stream'
  | 'openai.input-tokens'
  | 'anthropic.count-tokens'
  | 'gemini.count-tokens'
  | 'bedrock.count-tokens'
  | 'vertex.anthropic-count-tokens';
export type Provider = 'openai' | 'azure' | 'anthropic' | 'google' | 'bedrock' | 'vertex';

export const AI_APIS: readonly AiApi[] = Object.freeze([
  'openai.chat',
  'openai.responses',
  'openai.embeddings',
  'openai.completions',
  'openai.batches',
  'azure.chat',
  'azure.responses',
  'azure.embeddings',
  'azure.completions',
  'anthropic.messages',
  'anthropic.batches',
  'gemini.generate',
  'gemini.stream',
  'bedrock.converse',
  'bedrock.converse-stream',
  'bedrock.invoke',
  'bedrock.invoke-stream',
  'vertex.anthropic',
  'vertex.anthropic-stream',
  'openai.input-tokens',
  'anthropic.count-tokens',
  'gemini.count-tokens',
  'bedrock.count-tokens',
  'vertex.anthropic-count-tokens',
]);

/**
 * The providers' token-counting calls: no output, no charge. Read like the API whose body they
 * take, so the model is checked against the team's rules, but nothing is reserved or recorded.
 */
const FREE_APIS: ReadonlySet<AiApi> = new Set<AiApi>(['openai.input-tokens', 'anthropic.count-tokens', 'gemini.count-tokens', 'bedrock.count-tokens', 'vertex.anthropic-count-tokens']);

export function isFreeApi(api: AiApi): boolean {
  return FREE_APIS.has(api);
}

export const PROVIDER_OF: Readonly<Record<AiApi, Provider>> = Object.freeze({
  'openai.chat': 'openai',
  'openai.responses': 'openai',
  'openai.embeddings': 'openai',
  'openai.completions': 'openai',
  'openai.batches': 'openai',
  'azure.chat': 'azure',
  'azure.responses': 'azure',
  'azure.embeddings': 'azure',
  'azure.completions': 'azure',
  'anthropic.messages': 'anthropic',
  'anthropic.batches': 'anthropic',
  'gemini.generate': 'google',
  'gemini.stream': 'google',
  'bedrock.converse': 'bedrock',
  'bedrock.converse-stream': 'bedrock',
  'bedrock.invoke': 'bedrock',
  'bedrock.invoke-stream': 'bedrock',
  'vertex.anthropic': 'vertex',
  'vertex.anthropic-stream': 'vertex',
  'openai.input-tokens': 'openai',
  'anthropic.count-tokens': 'anthropic',
  'gemini.count-tokens': 'google',
  'bedrock.count-tokens': 'bedrock',
  'vertex.anthropic-count-tokens': 'vertex',
});

/** The OpenTelemetry GenAI conventions' gen_ai.provider.name of each provider. */
export const GEN_AI_PROVIDER_NAME: Readonly<Record<Provider, string>> = Object.freeze({
  openai: 'openai',
  azure: 'azure.ai.openai',
  anthropic: 'anthropic',
  google: 'gcp.gemini',
  bedrock: 'aws.bedrock',
  vertex: 'gcp.vertex_ai',
});

/**
 * The body and response format of each API. Azure OpenAI speaks OpenAI's formats; Gemini's
 * two methods share one body; Bedrock's two share one body (the stream is told by its content type).
 * Bedrock InvokeModel carries the model provider's own body: it is read for Anthropic Claude
 * (Messages bodies; its stream wraps Anthropic's events in event-stream `chunk` messages).
 */
export type WireFormat =
  | 'openai.chat'
  | 'openai.responses'
  | 'openai.embeddings'
  | 'openai.completions'
  | 'openai.batches'
  | 'anthropic.messages'
  | 'anthropic.batches'
  | 'gemini'
  | 'bedrock.converse'
  | 'bedrock.invoke';

export const FORMAT_OF: Readonly<Record<AiApi, WireFormat>> = Object.freeze({
  'openai.chat': 'openai.chat',
  'openai.responses': 'openai.responses',
  'openai.embeddings': 'openai.embeddings',
  'openai.completions': 'openai.completions',
  'openai.batches': 'openai.batches',
  'azure.chat': 'openai.chat',
  'azure.responses': 'openai.responses',
  'azure.embeddings': 'openai.embeddings',
  'azure.completions': 'openai.completions',
  'anthropic.messages': 'anthropic.messages',
  'anthropic.batches': 'anthropic.batches',
  'gemini.generate': 'gemini',
  'gemini.stream': 'gemini',
  'bedrock.converse': 'bedrock.converse',
  'bedrock.converse-stream': 'bedrock.converse',
  'bedrock.invoke': 'bedrock.invoke',
  'bedrock.invoke-stream': 'bedrock.invoke',
  'vertex.anthropic': 'anthropic.messages',
  'vertex.anthropic-stream': 'anthropic.messages',
  'openai.input-tokens': 'openai.responses',
  'anthropic.count-tokens': 'anthropic.messages',
  'gemini.count-tokens': 'gemini',
  'bedrock.count-tokens': 'bedrock.converse',
  'vertex.anthropic-count-tokens': 'anthropic.messages',
});

/** The path placeholder that carries the model (Gemini, Bedrock), and the one that carries an Azure deployment. */
export const MODEL_PLACEHOLDER = '{model}';
export const DEPLOYMENT_PLACEHOLDER = '{deployment}';

/**
 * Default paths. A path may hold one placeholder, a whole path segment or the part of one before a
 * `:` method: `{model}` (the model is taken from the path) or `{deployment}` (an Azure OpenAI
 * deployment: the model is the policy's `azureDeployments` entry for it, else its name).
 */
export const DEFAULT_AI_PATHS: Readonly<Record<AiApi, readonly string[]>> = Object.freeze({
  // Gemini's OpenAI-compatible endpoint speaks Chat Completions (model in the body).
  'openai.chat': Object.freeze(['/v1/chat/completions', '/v1beta/openai/chat/completions']),
  'openai.responses': Object.freeze(['/v1/responses']),
  'openai.embeddings': Object.freeze(['/v1/embeddings']),
  'openai.completions': Object.freeze(['/v1/completions']),
  'openai.batches': Object.freeze(['/v1/batches']),
  'azure.chat': Object.freeze(['/openai/deployments/{deployment}/chat/completions']),
  'azure.responses': Object.freeze(['/openai/responses']),
  'azure.embeddings': Object.freeze(['/openai/deployments/{deployment}/embeddings']),
  'azure.completions': Object.freeze(['/openai/deployments/{deployment}/completions']),
  'anthropic.messages': Object.freeze(['/v1/messages']),
  'anthropic.batches': Object.freeze(['/v1/messages/batches']),
  'gemini.generate': Object.freeze(['/v1beta/models/{model}:generateContent', '/v1/models/{model}:generateContent', '/publishers/google/models/{model}:generateContent']),
  'gemini.stream': Object.freeze(['/v1beta/models/{model}:streamGenerateContent', '/v1/models/{model}:streamGenerateContent', '/publishers/google/models/{model}:streamGenerateContent']),
  'bedrock.converse': Object.freeze(['/model/{model}/converse']),
  'bedrock.converse-stream': Object.freeze(['/model/{model}/converse-stream']),
  'bedrock.invoke': Object.freeze(['/model/{model}/invoke']),
  'bedrock.invoke-stream': Object.freeze(['/model/{model}/invoke-with-response-stream']),
  // Claude on Vertex AI: Anthropic Messages bodies and responses, the model (claude-sonnet-4-5@20250929) in the path.
  'vertex.anthropic': Object.freeze(['/publishers/anthropic/models/{model}:rawPredict']),
  'vertex.anthropic-stream': Object.freeze(['/publishers/anthropic/models/{model}:streamRawPredict']),
  // Token counts (free): the body of the API they count for.
  'openai.input-tokens': Object.freeze(['/v1/responses/input_tokens']),
  'anthropic.count-tokens': Object.freeze(['/v1/messages/count_tokens']),
  'gemini.count-tokens': Object.freeze(['/v1beta/models/{model}:countTokens', '/v1/models/{model}:countTokens', '/publishers/google/models/{model}:countTokens']),
  // Bedrock CountTokens: { input: { converse | invokeModel } }, the model in the path.
  'bedrock.count-tokens': Object.freeze(['/model/{model}/count-tokens']),
  // Claude on Vertex AI counts with the model in the body (a literal path: it wins over {model}:rawPredict).
  'vertex.anthropic-count-tokens': Object.freeze(['/publishers/anthropic/models/count-tokens:rawPredict']),
});

/** What a request path says: its API and, for the APIs that name it there, the model or deployment. */
export interface AiRoute {
  readonly api: AiApi;
  /** The placeholder's value, percent-decoded; undefined when the API's model is in the body. */
  readonly pathModel?: string | undefined;
  /** True when pathModel names an Azure deployment rather than a model. */
  readonly deployment?: boolean | undefined;
  /** Set when the placeholder could not be decoded (bad percent-encoding): the request is malformed. */
  readonly pathProblem?: string | undefined;
}

/** Matches a request path (query string ignored) to an API. A configured prefix such as '/openai' is allowed:
 *  a path matches when it equals a configured path or ends with it after a prefix segment boundary
 *  ('/openai/v1/chat/completions' matches '/v1/chat/completions'; '/v1/chat/completionsX' does not). */
export interface AiPathMatcher {
  match(path: string | undefined): AiApi | undefined;
  /** The API and what the path itself says about the model. */
  route(path: string | undefined): AiRoute | undefined;
}

interface PathRule {
  readonly api: AiApi;
  /** The configured path, normalised; its length without the placeholder orders the rules. */
  readonly path: string;
  readonly literalLength: number;
  /** Literal paths: undefined (endsWith is enough). */
  readonly pattern?: RegExp | undefined;
  /** The literal after the placeholder: a cheap test before the RegExp. */
  readonly tail?: string | undefined;
  readonly deployment?: boolean | undefined;
}

export function createAiPathMatcher(paths: Readonly<Partial<Record<AiApi, readonly string[]>>>): AiPathMatcher {
  const rules: PathRule[] = [];
  for (const api of AI_APIS) {
    for (const raw of paths[api] ?? []) {
      const trimmed = stripTrailingSlash(raw.trim());
      if (trimmed.length === 0) continue;
      const path = trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
      rules.push(ruleOf(api, path));
    }
  }
  // Longest first, so '/v1/chat/completions' wins over a shorter configured '/completions'.
  rules.sort((a, b) => b.literalLength - a.literalLength);

  function route(rawPath: string | undefined): AiRoute | undefined {
    if (rawPath === undefined || rawPath.length === 0) return undefined;
    const query = rawPath.search(/[?#]/);
    // Repeated slashes are one (as Envoy's merge_slashes and most servers treat them).
    const path = stripTrailingSlash((query === -1 ? rawPath : rawPath.slice(0, query)).replace(/\/{2,}/g, '/'));
    for (const rule of rules) {
      if (rule.pattern === undefined) {
        // A configured path always starts with '/', so endsWith lands on a segment boundary by itself.
        if (path.endsWith(rule.path)) return { api: rule.api };
        continue;
      }
      if (!path.endsWith(rule.tail!)) continue;
      const found = rule.pattern.exec(path);
      if (!found) continue;
      let value: string;
      try {
        value = decodeURIComponent(found[1]!);
      } catch {
        return { api: rule.api, pathProblem: `the model in the request path is not valid percent-encoding: ${found[1]!.slice(0, 80)}` };
      }
      return { api: rule.api, pathModel: value, deployment: rule.deployment === true ? true : undefined };
    }
    return undefined;
  }

  return { route, match: (path) => route(path)?.api };
}

function ruleOf(api: AiApi, path: string): PathRule {
  const placeholder = path.includes(MODEL_PLACEHOLDER) ? MODEL_PLACEHOLDER : path.includes(DEPLOYMENT_PLACEHOLDER) ? DEPLOYMENT_PLACEHOLDER : undefined;
  if (placeholder === undefined) return { api, path, literalLength: path.length };
  const at = path.indexOf(placeholder);
  const head = path.slice(0, at);
  const tail = path.slice(at + placeholder.length);
  // The value is one segment (never a '/'; an encoded %2F stays encoded until decoded here); before a
  // ':method' suffix (Gemini) it stops at the last ':' the literal tail needs.
  const pattern = new RegExp(`${escapeRegExp(head)}([^/]+)${escapeRegExp(tail)}$`);
  return { api, path, literalLength: head.length + tail.length, pattern, tail, deployment: placeholder === DEPLOYMENT_PLACEHOLDER };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function stripTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}
