/**
 * What the hostile-* suites share: raw requests whose path and framing go out as written, the
 * refusal every adapter sends, and the real nginx with the shipped forward-auth snippet in front
 * of the service and the stub LLM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as plainRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { freePort, startService, startStubLlm, type RunningService, type StubLlm } from '../support/index.js';
import { startNginx, type RunningNginx } from '../mesh/support/start-nginx.js';

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A request whose path goes out byte for byte (the URL parser would resolve `..` and more), optionally chunked without content-length. */
export function rawRequest(port: number, method: string, path: string, headers: Record<string, string | string[]>, body?: string | Buffer, options: { chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = { ...headers, ...(body !== undefined && !options.chunked ? { 'content-length': String(Buffer.byteLength(body)) } : {}) };
    const request = plainRequest({ host: '127.0.0.1', port, method, path, headers: outgoing, agent: false, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error(`${method} ${path} timed out`)));
    if (body !== undefined && options.chunked) {
      // Several DATA pieces, no content-length: Transfer-Encoding: chunked.
      const third = Math.ceil(body.length / 3);
      request.write(body.slice(0, third));
      request.write(body.slice(third, 2 * third));
      request.end(body.slice(2 * third));
    } else request.end(body);
  });
}

/** Asserts a refusal (status, one of `reasons`, a message, the decision id in the header) and returns its body. */
export function refusal(answer: Answer, status: number, reasons: string | readonly string[]): { reason_code: string; message: string; decision_id: string } {
  expect(answer.status, answer.body).toBe(status);
  const body = JSON.parse(answer.body) as { reason_code: string; message: string; decision_id: string };
  expect(typeof reasons === 'string' ? [reasons] : reasons, answer.body).toContain(body.reason_code);
  expect(body.message.length).toBeGreaterThan(0);
  expect(answer.headers['x-genops-decision-id']).toBe(body.decision_id);
  return body;
}

export interface ForwardAuthStack {
  readonly service: RunningService;
  readonly llm: StubLlm;
  /** nginx's port. */
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * The service with its forward-auth port, the stub LLM, and the real nginx with the shipped
 * forward-auth snippet (deploy/linkerd/nginx/genops-forward-auth.conf) in front of both; the
 * policy is written by `writePolicy` into a temporary directory removed on stop.
 */
export async function startForwardAuthStack(options: { prefix: string; writePolicy: (dir: string) => string }): Promise<ForwardAuthStack> {
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  let service: RunningService | undefined;
  let llm: StubLlm | undefined;
  let nginx: RunningNginx | undefined;
  const stop = async () => {
    await nginx?.stop();
    await service?.stop();
    await llm?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const forwardAuthPort = await freePort();
    service = await startService({ policyPath: options.writePolicy(dir), env: { GENOPS_FORWARD_AUTH_PORT: String(forwardAuthPort) } });
    llm = await startStubLlm({ chunkDelayMs: 1 });
    nginx = await startNginx({
      snippet: 'deploy/linkerd/nginx/genops-forward-auth.conf',
      vars: { GENOPS_FORWARD_AUTH_HOST: '127.0.0.1', GENOPS_FORWARD_AUTH_PORT: forwardAuthPort, UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: llm.port },
    });
    return { service, llm, port: Number(new URL(nginx.url).port), stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
