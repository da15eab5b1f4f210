import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { GenopsError } from '../errors/genops-error.js';
import type { Metrics } from '../telemetry/metrics.js';

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly metrics: Metrics;
  /** Ready to take traffic: listening, policy loaded, not draining. */
  readonly isReady: () => boolean;
  /** The /budgets document (JSON). */
  readonly budgets?: (() => Promise<unknown>) | undefined;
  /** Bearer token /budgets requires (it lists customer ids and their spend); undefined = /budgets is off (404). */
  readonly budgetsToken?: string | undefined;
}

/**
 * Admin HTTP: /metrics (Prometheus), /budgets (budget accounts, JSON; only with a token),
 * /healthz (alive), /readyz (ready for traffic). Probes and scrapes stay open.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { metrics, isReady } = options;
  const budgets = options.budgetsToken !== undefined ? options.budgets : undefined;
  const authorized = bearerCheck(options.budgetsToken ?? '');
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?', 1)[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = isReady();
      response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${error.message}\n`),
      );
    } else if (path === '/budgets' && budgets) {
      if (!authorized(request)) {
        response
          .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="genops-mesh-admin"' })
          .end(`${JSON.stringify({ error: 'unauthorized', message: '/budgets needs Authorization: Bearer <GENOPS_ADMIN_TOKEN>' })}\n`);
        return;
      }
      budgets().then(
        (document) => response.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(document, null, 2)}\n`),
        (error: Error) => response.writeHead(503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ error: 'budget ledger unavailable', message: error.message })}\n`),
      );
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try /metrics${budgets ? ', /budgets' : ''}, /healthz or /readyz\n`);
    }
  });
  server.keepAliveTimeout = 65_000;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (error) => reject(new GenopsError('invalid_settings', `cannot listen for admin HTTP on ${options.host}:${options.port}: ${error.message}`, { cause: error })));
    server.listen(options.port, options.host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : options.port);
    });
  });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Compares `Authorization: Bearer <token>` in constant time (digests of equal length). */
function bearerCheck(token: string): (request: IncomingMessage) => boolean {
  const expected = createHash('sha256').update(token).digest();
  return (request) => {
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
    if (!match) return false;
    return timingSafeEqual(createHash('sha256').update(match[1]!).digest(), expected);
  };
}
