/**
 * What a request can be billed for beyond its body's text: inputs the body only points at
 * (a previous response, a conversation, files, media URLs and inline media), server-side tools the
 * provider runs (each call billed, each call's results read as input), the service tier asked for
 * and 1-hour cache writes. The budget's worst case is built from this (governance/budget-bound.ts).
 */
import { FORMAT_OF, type AiApi, type WireFormat } from './ai-api.js';

export interface ServerToolUse {
  /** web_search, web_fetch, file_search, code_interpreter, code_execution, mcp, … (dated suffixes dropped). */
  readonly name: string;
  /** The most calls the request allows (max_uses, max_tool_calls); undefined when it sets no maximum. */
  readonly maxCalls: number | undefined;
}

export interface RequestBound {
  /** What the body points at rather than carries (e.g. "previous_response_id", "image URL"); empty when the body is all there is. */
  readonly outsideInputs: readonly string[];
  readonly serverTools: readonly ServerToolUse[];
  /** service_tier as asked (priority, flex, batch, auto, default, standard_only); undefined when absent. */
  readonly serviceTier: string | undefined;
  /** The longest prompt-cache lifetime the body asks for: "1h" costs more to write than the default 5 minutes. */
  readonly cacheTtl: '5m' | '1h' | undefined;
  /**
   * Bytes of the body once re-serialized, when that is longer than the body (numbers written with
   * an exponent: 1e20 becomes 100000000000000000000): what the provider reads if the service rewrites it.
   */
  readonly reserializedBytes?: number | undefined;
}

export const NO_BOUND_EXTRAS: RequestBound = Object.freeze({ outsideInputs: [], serverTools: [], serviceTier: undefined, cacheTtl: undefined });

/** Nesting walked for media and cache_control (deeper content is not a real request: the body reader bounds depth). */
const MAX_DEPTH = 32;
/** Media and file parts: their tokens have nothing to do with the bytes the body spends on them. */
const MEDIA_TYPES: ReadonlySet<string> = new Set(['image_url', 'input_image', 'image', 'document', 'file', 'input_file', 'input_audio', 'audio', 'video', 'video_url', 'item_reference', 'container_upload']);
/** Gemini and Bedrock name a part by its key: inline or stored media, documents, a cached context. */
const MEDIA_KEYS: ReadonlySet<string> = new Set(['inlineData', 'inline_data', 'fileData', 'file_data', 'image', 'document', 'video', 'audio']);
/** Gemini tools the provider runs itself (none takes a maximum of calls). */
const GEMINI_SERVER_TOOLS: Readonly<Record<string, string>> = { googleSearch: 'web_search', google_search: 'web_search', googleSearchRetrieval: 'web_search', google_search_retrieval: 'web_search', codeExecution: 'code_execution', code_execution: 'code_execution', urlContext: 'web_fetch', url_context: 'web_fetch' };
/** Responses API built-in tools the provider runs itself. */
const OPENAI_SERVER_TOOLS: ReadonlySet<string> = new Set(['web_search', 'web_search_preview', 'file_search', 'code_interpreter', 'image_generation', 'mcp', 'computer_use_preview', 'local_shell']);

/** True when the request can be billed for anything beyond its body's text. */
export function hasBoundExtras(bound: RequestBound): boolean {
  return bound.outsideInputs.length > 0 || bound.serverTools.length > 0 || bound.serviceTier !== undefined || bound.cacheTtl !== undefined || bound.reserializedBytes !== undefined;
}

/** A JSON number with an exponent (in a string too: then the check is only conservative). */
const EXPONENT_NUMBER = /[0-9][eE][+-]?[0-9]/;

export function readRequestBound(api: AiApi, fields: Record<string, unknown>, text?: string): RequestBound {
  const format = FORMAT_OF[api];
  const outsideInputs = new Set<string>();
  // `prompt` is a stored prompt template on the Responses API; on legacy Completions it is the text itself.
  const pointers =
    format === 'gemini' ? ['cachedContent', 'cached_content']
    : format === 'bedrock.converse' ? ['promptVariables']
    : format === 'openai.completions' ? ['previous_response_id']
    : ['previous_response_id', 'conversation', 'prompt', 'file_id', 'file_ids', 'container'];
  for (const key of pointers) if (present(fields[key])) outsideInputs.add(key);
  const scan = { media: new Set<string>(), cacheTtl: undefined as RequestBound['cacheTtl'], byKey: format === 'gemini' || format === 'bedrock.converse' };
  walk(fields, 0, scan);
  for (const media of scan.media) outsideInputs.add(media);
  return {
    outsideInputs: [...outsideInputs],
    serverTools: serverToolsOf(format, fields),
    serviceTier: typeof fields.service_tier === 'string' ? fields.service_tier.toLowerCase() : undefined,
    cacheTtl: scan.cacheTtl,
    ...reserialized(fields, text),
  };
}

function reserialized(fields: Record<string, unknown>, text: string | undefined): { reserializedBytes?: number } {
  if (text === undefined || !EXPONENT_NUMBER.test(text)) return {};
  const bytes = Buffer.byteLength(JSON.stringify(fields), 'utf8');
  return bytes > Buffer.byteLength(text, 'utf8') ? { reserializedBytes: bytes } : {};
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

function walk(value: unknown, depth: number, scan: { media: Set<string>; cacheTtl: RequestBound['cacheTtl']; byKey: boolean }): void {
  if (typeof value !== 'object' || value === null || depth >= MAX_DEPTH) return;
  if (Array.isArray(value)) {
    for (const item of value) walk(item, depth + 1, scan);
    return;
  }
  const record = value as Record<string, unknown>;
  if (typeof record.type === 'string' && MEDIA_TYPES.has(record.type)) scan.media.add(`${record.type} part`);
  if (scan.byKey) {
    for (const key in record) if (MEDIA_KEYS.has(key) && typeof record[key] === 'object' && record[key] !== null) scan.media.add(`${key} part`);
  }
  // A Chat Completions assistant message may name an earlier audio response by id: billed as input, not in the body.
  else if (typeof record.audio === 'object' && record.audio !== null && typeof (record.audio as { id?: unknown }).id === 'string') scan.media.add('audio reference');
  // Anthropic cache_control (ttl 5m or 1h); Bedrock's cachePoint blocks write the default cache.
  const cache = record.cache_control ?? record.cachePoint;
  if (typeof cache === 'object' && cache !== null) scan.cacheTtl = (cache as { ttl?: unknown }).ttl === '1h' || scan.cacheTtl === '1h' ? '1h' : '5m';
  for (const key in record) if (key !== 'cache_control' && key !== 'cachePoint') walk(record[key], depth + 1, scan);
}

function serverToolsOf(api: WireFormat, fields: Record<string, unknown>): ServerToolUse[] {
  const tools = Array.isArray(fields.tools) ? (fields.tools as unknown[]) : [];
  const used: ServerToolUse[] = [];
  const typeOf = (tool: unknown) => (typeof tool === 'object' && tool !== null && typeof (tool as { type?: unknown }).type === 'string' ? (tool as { type: string }).type : undefined);
  if (api === 'openai.responses') {
    // max_tool_calls caps all built-in tool calls of the response together: each tool is bounded by it.
    const maxCalls = positiveInteger(fields.max_tool_calls);
    for (const tool of tools) {
      const type = typeOf(tool);
      if (type !== undefined && OPENAI_SERVER_TOOLS.has(undated(type))) used.push({ name: undated(type), maxCalls });
    }
  } else if (api === 'openai.chat') {
    // Search models (gpt-4o-search-preview, …) search once per request when asked to.
    if (present(fields.web_search_options)) used.push({ name: 'web_search', maxCalls: 1 });
  } else if (api === 'anthropic.messages' || api === 'bedrock.invoke') {
    for (const tool of tools) {
      const type = typeOf(tool);
      // Client tools (type absent or "custom") run on the client and come back as input in a later request.
      if (type === undefined || type === 'custom' || !/_\d{8}$/.test(type)) continue;
      const name = undated(type);
      if (name === 'web_search' || name === 'web_fetch' || name === 'code_execution' || name === 'tool_search_tool_regex' || name === 'tool_search_tool_bm25') {
        used.push({ name, maxCalls: positiveInteger((tool as { max_uses?: unknown }).max_uses) });
      }
    }
    if (Array.isArray(fields.mcp_servers) && fields.mcp_servers.length > 0) used.push({ name: 'mcp', maxCalls: undefined });
  } else if (api === 'gemini') {
    for (const tool of tools) {
      if (typeof tool !== 'object' || tool === null) continue;
      for (const key of Object.keys(tool)) if (GEMINI_SERVER_TOOLS[key] !== undefined) used.push({ name: GEMINI_SERVER_TOOLS[key], maxCalls: undefined });
    }
  }
  return used;
}

/** web_search_20250305 → web_search; web_search_preview_2025_03_11 → web_search_preview. */
function undated(type: string): string {
  return type.replace(/(_\d{4}_\d{2}_\d{2}|_\d{8})$/, '');
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 ? value : undefined;
}
