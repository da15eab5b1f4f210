/**
 * The AI exchange as Envoy's ext_proc filter sends it to the service, as protobuf bytes: request
 * headers (the bench's governance headers and a traceparent), the buffered JSON request body,
 * response headers and the response body — one JSON body, or an SSE stream cut into `chunks`
 * pieces at event boundaries with the usage in the last event. Shared by bench/exchange-cpu.ts
 * (in-process) and bench/exchange-rss.ts (through grpc-js to dist/main.js).
 */
import { protoRoot } from '../../src/server/proto-definitions.js';
import { openAiChatJson, openAiChatSse } from '../../test/support/llm-wire.js';

export interface ExchangeWire {
  readonly requestHeaders: Buffer;
  readonly requestBody: Buffer;
  readonly responseHeaders: Buffer;
  readonly body: readonly Buffer[];
}

export function aiExchangeWire(CHUNKS: number): { json: ExchangeWire; sse: ExchangeWire } {

  const root = protoRoot();
  const ProcessingRequestType = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
  const encode = (message: Record<string, unknown>) => Buffer.from(ProcessingRequestType.encode(ProcessingRequestType.fromObject(message)).finish());
  const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });

  const REQUEST_BODY = JSON.stringify({ model: 'claude-opus-4-1', max_tokens: 1024, messages: [{ role: 'system', content: 'You are a support assistant. Answer briefly.' }, { role: 'user', content: 'Summarize the ticket, please: the customer cannot log in since the last update and has tried resetting the password twice.' }] });
  const requestHeaders = (stream: boolean) => encode({
    request_headers: {
      headers: headerMap({
        ':authority': 'llm.internal:10000', ':path': '/v1/chat/completions', ':method': 'POST', ':scheme': 'http',
        'user-agent': 'bench/1.0', 'content-type': 'application/json', 'content-length': String(REQUEST_BODY.length), accept: stream ? 'text/event-stream' : 'application/json',
        'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'cust-0000001', 'x-genops-project': 'support-chatbot', 'x-genops-customer-tier': 'premium',
        'x-genops-environment': 'production', 'x-genops-cost-center': 'cc-4711', 'x-genops-feature': 'chat',
        traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-01',
        'x-forwarded-proto': 'http', 'x-request-id': '6f1c2a52-9d1e-4a0b-8c55-1f0e2d3c4b5a',
      }),
    },
  });
  const requestBody = (stream: boolean) => encode({ request_body: { body: Buffer.from(stream ? REQUEST_BODY.replace('{', '{"stream":true,"stream_options":{"include_usage":true},') : REQUEST_BODY), end_of_stream: true } });
  const responseHeaders = (contentType: string) => encode({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': contentType, date: 'Fri, 04 Dec 2026 23:00:00 GMT', server: 'upstream', 'x-request-id': '6f1c2a52-9d1e-4a0b-8c55-1f0e2d3c4b5a' }) } });
  const USAGE = { input: 120, cachedInput: 0, cacheWrite: 0, output: CHUNKS, reasoning: 0 };
  const JSON_RESPONSE = encode({ response_body: { body: Buffer.from(openAiChatJson({ model: 'claude-opus-4-1', usage: USAGE, text: 'The customer cannot log in since the update; two password resets did not help. Next: check the session store.' })), end_of_stream: true } });

  /** The SSE stream cut into CHUNKS pieces at event boundaries, as a provider flushes tokens. */
  function sseChunks(): Buffer[] {
    const stream = Buffer.from(openAiChatSse({ model: 'claude-opus-4-1', usage: USAGE, deltas: Array.from({ length: CHUNKS - 3 }, (_, index) => ['Paris', ' is', ' the', ' capital', ' of', ' France', '.'][index % 7]!), includeUsage: true }));
    const ends: number[] = [];
    for (let index = stream.indexOf('\n\n'); index !== -1; index = stream.indexOf('\n\n', index + 2)) ends.push(index + 2);
    const step = Math.max(1, Math.floor(ends.length / CHUNKS));
    const pieces: Buffer[] = [];
    let start = 0;
    for (let index = step - 1; index < ends.length && pieces.length < CHUNKS - 1; index += step) {
      pieces.push(stream.subarray(start, ends[index]));
      start = ends[index]!;
    }
    pieces.push(stream.subarray(start));
    return pieces;
  }
  const SSE_PIECES = sseChunks();
  const SSE_RESPONSE = SSE_PIECES.map((piece, index) => encode({ response_body: { body: piece, end_of_stream: index === SSE_PIECES.length - 1 } }));

  return {
    json: { requestHeaders: requestHeaders(false), requestBody: requestBody(false), responseHeaders: responseHeaders('application/json'), body: [JSON_RESPONSE] },
    sse: { requestHeaders: requestHeaders(true), requestBody: requestBody(true), responseHeaders: responseHeaders('text/event-stream'), body: SSE_RESPONSE },
  };
}
