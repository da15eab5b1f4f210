import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';

export interface StubLlm {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * A stand-in LLM provider for the demo: answers every request with an OpenAI
 * chat completion for the model its body names, with usage (prompt tokens
 * about a quarter of the body's characters, as a tokenizer would count them),
 * and says what route Envoy sent it to. The tests use test/support/stub-llm.ts,
 * which speaks every provider's wire format.
 */
export async function startStubLlm(host = '127.0.0.1'): Promise<StubLlm> {
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const route = String(request.headers['x-genops-route'] ?? 'unrouted');
      const body = Buffer.concat(chunks).toString('utf8');
      let model = 'unknown';
      try {
        model = String((JSON.parse(body) as { model?: unknown }).model ?? model);
      } catch {
        // not JSON: the governance layer refuses such bodies before they get here
      }
      const content = `Hello from ${route}! How can I help you today?`;
      const promptTokens = Math.max(1, Math.ceil(body.length / 4));
      const completionTokens = Math.ceil(content.length / 4);
      const completion = {
        id: `chatcmpl-${randomUUID().slice(0, 12)}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model,
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: 0 } },
        // What the stub saw, so the demo can show what reached the provider.
        received: {
          route,
          routed_by: request.headers['x-routed-by'],
          team: request.headers['x-genops-team'],
          decision_id: request.headers['x-genops-decision-id'],
        },
      };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completion));
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
