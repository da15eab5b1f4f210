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
  void paths;
  throw new Error('createAiPathMatcher: not implemented yet');
}
