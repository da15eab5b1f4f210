import type { AiApi } from './ai-api.js';

export interface AiRequest {
  readonly api: AiApi;
  /** As sent, trimmed; NOT lowercased (the caller normalises). */
  readonly model: string;
  readonly stream: boolean;
  /** max_tokens | max_completion_tokens (chat: prefer max_completion_tokens) | max_output_tokens (responses); undefined for embeddings. */
  readonly outputCap: number | undefined;
  /** chat `n`, default 1; 1 for the others. */
  readonly n: number;
  /** Rough: text characters of messages/input/system/instructions/tools ÷ 4, rounded up, ≥ 1; images etc. counted roughly. */
  readonly inputEstimateTokens: number;
  /** openai.chat with stream:true and without stream_options.include_usage:true. */
  readonly needsIncludeUsage: boolean;
}

export type BodyProblemCode = 'not_json' | 'not_object' | 'model_missing' | 'model_not_string' | 'bad_field';

/** message names the problem and the field, e.g. `request body field "model" must be a string (got number)`. */
export interface BodyProblem {
  readonly code: BodyProblemCode;
  readonly message: string;
}

export type ParsedAiRequest =
  | { readonly ok: true; readonly request: AiRequest; readonly json: Record<string, unknown> }
  | { readonly ok: false; readonly problem: BodyProblem };

export function parseAiRequestBody(api: AiApi, body: Uint8Array): ParsedAiRequest {
  void api;
  void body;
  throw new Error('parseAiRequestBody: not implemented yet');
}

/** Changes to the forwarded body. */
export interface RequestBodyChanges {
  readonly includeUsage?: boolean;
  readonly model?: string;
  readonly outputCap?: number;
}

/** Returns the new body bytes (JSON.stringify of the patched object; the original key order kept, new keys appended). */
export function rewriteAiRequestBody(api: AiApi, json: Record<string, unknown>, changes: RequestBodyChanges): Buffer {
  void api;
  void json;
  void changes;
  throw new Error('rewriteAiRequestBody: not implemented yet');
}
