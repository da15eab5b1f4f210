/** The AI APIs whose bodies the service reads, and how request paths map to them. */
export type AiApi = 'openai.chat' | 'openai.responses' | 'openai.embeddings' | 'anthropic.messages';
export type Provider = 'openai' | 'anthropic';

export const AI_APIS: readonly AiApi[] = Object.freeze(['openai.chat', 'openai.responses', 'openai.embeddings', 'anthropic.messages']);

export const PROVIDER_OF: Readonly<Record<AiApi, Provider>> = Object.freeze({
  'openai.chat': 'openai',
  'openai.responses': 'openai',
  'openai.embeddings': 'openai',
  'anthropic.messages': 'anthropic',
});

/** Default path suffixes: '/v1/chat/completions','/v1/responses','/v1/embeddings','/v1/messages'. */
export const DEFAULT_AI_PATHS: Readonly<Record<AiApi, readonly string[]>> = Object.freeze({
  'openai.chat': Object.freeze(['/v1/chat/completions']),
  'openai.responses': Object.freeze(['/v1/responses']),
  'openai.embeddings': Object.freeze(['/v1/embeddings']),
  'anthropic.messages': Object.freeze(['/v1/messages']),
});

/** Matches a request path (query string ignored) to an API. A configured prefix such as '/openai' is allowed:
 *  a path matches when it equals a configured path or ends with it after a prefix segment boundary
 *  ('/openai/v1/chat/completions' matches '/v1/chat/completions'; '/v1/chat/completionsX' does not). */
export interface AiPathMatcher {
  match(path: string | undefined): AiApi | undefined;
}

export function createAiPathMatcher(paths: Readonly<Partial<Record<AiApi, readonly string[]>>>): AiPathMatcher {
  const suffixes: { readonly path: string; readonly api: AiApi }[] = [];
  for (const api of AI_APIS) {
    for (const raw of paths[api] ?? []) {
      const path = stripTrailingSlash(raw.trim());
      if (path.length > 0) suffixes.push({ path: path.startsWith('/') ? path : `/${path}`, api });
    }
  }
  // Longest first, so '/v1/chat/completions' wins over a shorter configured '/completions'.
  suffixes.sort((a, b) => b.path.length - a.path.length);
  return {
    match(rawPath) {
      if (rawPath === undefined || rawPath.length === 0) return undefined;
      const query = rawPath.search(/[?#]/);
      // Repeated slashes are one (as Envoy's merge_slashes and most servers treat them).
      const path = stripTrailingSlash((query === -1 ? rawPath : rawPath.slice(0, query)).replace(/\/{2,}/g, '/'));
      for (const suffix of suffixes) {
        // A configured path always starts with '/', so endsWith lands on a segment boundary by itself.
        if (path.endsWith(suffix.path)) return suffix.api;
      }
      return undefined;
    },
  };
}

function stripTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}
