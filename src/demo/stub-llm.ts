import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';

export interface StubLlm {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * A stand-in LLM provider: answers every request with a small OpenAI-style
 * chat completion naming the model route Envoy sent it to.
 */
export async function startStubLlm(host = '127.0.0.1'): Promise<StubLlm> {
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const route = String(request.headers['x-genops-route'] ?? 'unrouted');
      const completion = {
        id: `chatcmpl-${randomUUID().slice(0, 12)}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: route,
        choices: [{ index: 0, message: { role: 'assistant', content: `Hello from ${route}.` }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
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
