import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { ForwardAuthAdapter, ForwardAuthResponse } from '../envoy/forward-auth-adapter.js';
import { GenopsError } from '../errors/genops-error.js';
import type { HeaderLookup } from '../governance/governance-context.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServiceTls } from './service-tls.js';

export interface ForwardAuthServer {
  readonly port: number;
  /** Stops accepting connections, lets in-flight checks finish for up to `timeoutMs`, then closes the rest. */
  close(timeoutMs: number): Promise<void>;
}

export interface ForwardAuthServerOptions {
  readonly host: string;
  readonly port: number;
  readonly adapter: ForwardAuthAdapter;
  readonly logger: Logger;
  /** Serve HTTPS (with client certificates and the allow-list when mutual); plain HTTP when absent. */
  readonly tls?: ServiceTls | undefined;
}

const NOT_FOUND = JSON.stringify({
  error: 'not_found',
  message: 'forward-auth endpoints: /forward-auth (Traefik forwardAuth), /forward-auth/nginx (nginx auth_request, ingress-nginx auth-url), /forward-auth/envoy/<path> (Envoy HTTP ext_authz with path_prefix /forward-auth/envoy)',
});

/**
 * The forward-auth HTTP endpoint (its own port): every method, no body
 * needed; the answer is the adapter's. An unexpected failure is a 503 without
 * a decision (the proxy refuses the request: fail closed), never a 2xx.
 */
export async function startForwardAuthServer(options: ForwardAuthServerOptions): Promise<ForwardAuthServer> {
  const { adapter, logger } = options;
  let closing = false;

  const { tls } = options;
  const allowedSockets = new WeakMap<object, boolean>();
  const handle = (request: IncomingMessage, response: ServerResponse) => {
    // Proxies send no body (nginx: proxy_pass_request_body off); drain any so keep-alive works.
    request.resume();
    if (tls?.allowList) {
      const socket = request.socket as TLSSocket;
      let allowed = allowedSockets.get(socket);
      if (allowed === undefined) {
        // Once per connection, from the X509 object: getPeerCertificate() decodes the whole certificate.
        const certificate = { subjectaltname: socket.getPeerX509Certificate()?.subjectAltName ?? '' };
        allowed = tls.allowList.allowedIdentityOf(certificate) !== undefined;
        allowedSockets.set(socket, allowed);
        if (!allowed) logger.warn({ event: 'client_refused', identities: tls.allowList.identitiesOf(certificate) }, 'forward-auth client certificate is not on GENOPS_TLS_CLIENT_ALLOW');
      }
      if (!allowed) {
        response.writeHead(403, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ error: 'forbidden', message: 'this client certificate is not allowed to call genops-mesh' }));
        return;
      }
    }
    const send = (answer: ForwardAuthResponse) => {
      if (response.headersSent || response.destroyed) return;
      const headers: Record<string, string> = { 'cache-control': 'no-store' };
      for (const [name, value] of answer.headers) headers[name] = value;
      if (closing) headers.connection = 'close';
      response.writeHead(answer.status, headers).end(answer.body);
    };
    const fail = (error: unknown) => {
      logger.error({ event: 'forward_auth_failure', err: error }, 'forward-auth check failed');
      send({ status: 503, headers: [['content-type', 'application/json']], body: JSON.stringify({ error: 'unavailable', message: 'the governance check failed; the request is refused' }) });
    };
    try {
      const answer = adapter.check({ target: request.url ?? '/', method: request.method, headers: headerLookupOf(request) });
      if (answer === undefined) send({ status: 404, headers: [['content-type', 'application/json']], body: NOT_FOUND });
      else if (answer instanceof Promise) answer.then(send, fail);
      else send(answer);
    } catch (error) {
      fail(error);
    }
  };
  const server: Server = tls
    ? createHttpsServer({ ...tls.current(), requestCert: tls.mutual, rejectUnauthorized: tls.mutual }, handle)
    : createServer(handle);
  // A renewed certificate serves new connections; open ones keep their session.
  if (tls) tls.onChange((secure) => (server as unknown as { setSecureContext(options: object): void }).setSecureContext(secure));
  // Proxies keep connections to the auth service open (nginx upstream keepalive); outlive their idle timeouts.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (error) => reject(new GenopsError('invalid_settings', `cannot listen for forward-auth HTTP on ${options.host}:${options.port}: ${error.message}`, { cause: error })));
    server.listen(options.port, options.host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : options.port);
    });
  });

  return {
    port,
    close(timeoutMs) {
      closing = true;
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

/** Header lookup by lowercase name; a repeated header is joined with "," as on the gRPC paths, so it fails validation. */
function headerLookupOf(request: IncomingMessage): HeaderLookup {
  const headers = request.headersDistinct;
  return (name) => {
    const values = headers[name];
    return values === undefined ? undefined : values.join(',');
  };
}
