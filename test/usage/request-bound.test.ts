/**
 * What a request can be billed for beyond its body's text, read from the providers' real request
 * shapes, and the bill's extras read back from their responses (JSON and SSE, split anywhere).
 */
import { describe, expect, it } from 'vitest';
import { createUsageMeter } from '../../src/usage/response-usage.js';
import { readRequestBound } from '../../src/usage/request-bound.js';
import { anthropicMessagesJson, anthropicMessagesSse, randomOffsets, seededRandom, splitAt, tokenUsage } from '../support/llm-wire.js';

describe('what a request points at rather than carries', () => {
  it('names previous responses, conversations, files and every media part, URL or inline', () => {
    expect(readRequestBound('openai.responses', { model: 'o3', previous_response_id: 'resp_1', conversation: 'conv_1', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }, { type: 'input_image', image_url: 'https://x/y.png' }] }] }).outsideInputs)
      .toEqual(['previous_response_id', 'conversation', 'input_file part', 'input_image part']);
    expect(readRequestBound('anthropic.messages', { model: 'claude-haiku-4-5', messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } }] }], container: 'container_1' }).outsideInputs)
      .toEqual(['container', 'image part']);
    expect(readRequestBound('openai.chat', { model: 'gpt-4o', messages: [{ role: 'user', content: 'plain text' }] }).outsideInputs).toEqual([]);
    // Stored items and audio named by id: their tokens are billed as input, their bytes are not in the body.
    expect(readRequestBound('openai.responses', { model: 'gpt-4.1', input: [{ type: 'item_reference', id: 'msg_1' }] }).outsideInputs).toEqual(['item_reference part']);
    expect(readRequestBound('openai.chat', { model: 'gpt-4o-audio-preview', messages: [{ role: 'assistant', audio: { id: 'audio_1' } }, { role: 'user', content: 'again' }] }).outsideInputs).toEqual(['audio reference']);
    expect(readRequestBound('anthropic.messages', { model: 'claude-haiku-4-5', messages: [{ role: 'user', content: [{ type: 'container_upload', file_id: 'file_1' }] }] }).outsideInputs).toEqual(['container_upload part']);
  });

  it('names server tools with their maximum calls, and none for client tools', () => {
    expect(readRequestBound('anthropic.messages', { tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }, { type: 'web_fetch_20250910', name: 'web_fetch' }, { name: 'get_weather', input_schema: {} }, { type: 'custom', name: 'lookup' }] }).serverTools)
      .toEqual([{ name: 'web_search', maxCalls: 5 }, { name: 'web_fetch', maxCalls: undefined }]);
    expect(readRequestBound('openai.responses', { max_tool_calls: 4, tools: [{ type: 'web_search_preview' }, { type: 'function', name: 'f' }, { type: 'file_search' }] }).serverTools)
      .toEqual([{ name: 'web_search_preview', maxCalls: 4 }, { name: 'file_search', maxCalls: 4 }]);
    expect(readRequestBound('openai.chat', { web_search_options: {} }).serverTools).toEqual([{ name: 'web_search', maxCalls: 1 }]);
    expect(readRequestBound('anthropic.messages', { mcp_servers: [{ type: 'url', url: 'https://mcp.example.com' }] }).serverTools).toEqual([{ name: 'mcp', maxCalls: undefined }]);
  });

  it('reads the service tier and the longest cache lifetime asked for', () => {
    expect(readRequestBound('openai.chat', { service_tier: 'Priority' }).serviceTier).toBe('priority');
    expect(readRequestBound('anthropic.messages', { system: [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }], messages: [{ role: 'user', content: [{ type: 'text', text: 'y', cache_control: { type: 'ephemeral', ttl: '1h' } }] }] }).cacheTtl).toBe('1h');
    expect(readRequestBound('anthropic.messages', { system: [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }] }).cacheTtl).toBe('5m');
  });
});

describe('Gemini and Bedrock shapes', () => {
  it('names inline and stored media, cached contents, Gemini server tools and Bedrock cache points', () => {
    const gemini = readRequestBound('gemini.generate', { contents: [{ role: 'user', parts: [{ text: 'what is this?' }, { inlineData: { mimeType: 'image/png', data: 'iVBOR' } }, { fileData: { fileUri: 'gs://b/f.pdf' } }] }], cachedContent: 'cachedContents/abc', tools: [{ googleSearch: {} }, { functionDeclarations: [] }] });
    expect(gemini.outsideInputs).toEqual(['cachedContent', 'inlineData part', 'fileData part']);
    expect(gemini.serverTools).toEqual([{ name: 'web_search', maxCalls: undefined }]);
    const bedrock = readRequestBound('bedrock.converse', { messages: [{ role: 'user', content: [{ text: 'x' }, { document: { format: 'pdf', name: 'd', source: { s3Location: { uri: 's3://b/d.pdf' } } } }] }], system: [{ text: 'rules' }, { cachePoint: { type: 'default' } }] });
    expect(bedrock.outsideInputs).toEqual(['document part']);
    expect(bedrock.cacheTtl).toBe('5m');
    expect(readRequestBound('azure.responses', { previous_response_id: 'resp_1', input: 'x' }).outsideInputs).toEqual(['previous_response_id']);
    // Claude through Bedrock InvokeModel: the Messages body.
    expect(readRequestBound('bedrock.invoke', { anthropic_version: 'bedrock-2023-05-31', tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 2 }], messages: [] }).serverTools).toEqual([{ name: 'web_search', maxCalls: 2 }]);
    expect(readRequestBound('openai.completions', { prompt: 'Say this is a test' }).outsideInputs).toEqual([]);
  });
});

describe('the bill’s extras in Anthropic responses', () => {
  const usage = tokenUsage({ input: 3000, cacheWrite: 1000, cacheWrite1h: 600, output: 50, serverToolCalls: { web_search: 2 } });
  const fixture = { model: 'claude-haiku-4-5', usage, text: 'Found it.' };

  it('reads 1-hour cache writes and server tool calls from JSON and from SSE split anywhere', () => {
    const json = createUsageMeter({ api: 'anthropic.messages', contentType: 'application/json' });
    json.push(Buffer.from(anthropicMessagesJson(fixture)));
    expect(json.end().usage).toMatchObject({ cacheWrite: 1000, cacheWrite1h: 600, serverToolCalls: { web_search: 2 } });
    const random = seededRandom(20);
    const sse = Buffer.from(anthropicMessagesSse(fixture));
    for (let run = 0; run < 20; run++) {
      const stream = createUsageMeter({ api: 'anthropic.messages', contentType: 'text/event-stream' });
      for (const piece of splitAt(sse, randomOffsets(random, sse.length, 6))) stream.push(piece);
      expect(stream.end().usage).toMatchObject({ cacheWrite1h: 600, serverToolCalls: { web_search: 2 } });
    }
  });
});
