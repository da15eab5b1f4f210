import { readFileSync } from 'node:fs';
import { request as plainRequest, type Agent, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as connectHttp2, constants as http2 } from 'node:http2';
import { request as tlsRequest, type RequestOptions as TlsRequestOptions } from 'node:https';
import type { PeerCertificate } from 'node:tls';

export interface HttpRequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  /** A keep-alive agent to share connections; a fresh connection otherwise. */
  readonly agent?: Agent;
  readonly timeoutMs?: number;
  /** For https URLs: PEM file paths of the CA to trust and of the client certificate to present. */
  readonly tls?: {
    readonly ca: string;
    readonly cert?: string;
    readonly key?: string;
    /** Verify the server by this URI SAN (a mesh's SPIFFE id) instead of the URL's host name. */
    readonly serverIdentity?: string;
  };
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
  /** One response header (the first value if repeated), or undefined. */
  header(name: string): string | undefined;
}

/** One HTTP/1.1 request with node:http (node:https for https URLs); resolves with the whole response. */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  const method = options.method ?? 'GET';
  const timeoutMs = options.timeoutMs ?? 10_000;
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.body !== undefined) headers['content-length'] = Buffer.byteLength(options.body);
  const common = { method, headers, agent: options.agent ?? false, timeout: timeoutMs };

  return new Promise((resolve, reject) => {
    const onResponse = (response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve(toResponse(response.statusCode ?? 0, response.headers, Buffer.concat(chunks))));
    };
    const request = url.startsWith('https:') ? tlsRequest(url, { ...common, ...tlsOptions(options.tls) }, onResponse) : plainRequest(url, common, onResponse);
    request.on('timeout', () => request.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(options.body);
  });
}

/** One request over HTTP/2 with prior knowledge (h2c) on its own connection; resolves with the whole response. */
export function http2Request(url: string, options: Omit<HttpRequestOptions, 'agent' | 'tls'> = {}): Promise<HttpResponse> {
  const target = new URL(url);
  const method = options.method ?? 'GET';
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const session = connectHttp2(target.origin);
    const fail = (error: Error) => {
      session.destroy();
      reject(error);
    };
    session.on('error', fail);
    const stream = session.request({ [http2.HTTP2_HEADER_METHOD]: method, [http2.HTTP2_HEADER_PATH]: `${target.pathname}${target.search}`, ...options.headers });
    stream.setTimeout(timeoutMs, () => fail(new Error(`${method} ${url} over h2c timed out after ${timeoutMs} ms`)));
    stream.on('error', fail);
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    stream.on('response', (received) => {
      status = Number(received[http2.HTTP2_HEADER_STATUS]);
      headers = Object.fromEntries(Object.entries(received).filter(([name]) => !name.startsWith(':'))) as IncomingHttpHeaders;
    });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      session.close();
      if (status === 0) reject(new Error(`${method} ${url} over h2c: the stream ended without a response`));
      else resolve(toResponse(status, headers, Buffer.concat(chunks)));
    });
    stream.end(options.body);
  });
}

function toResponse(status: number, headers: IncomingHttpHeaders, raw: Buffer): HttpResponse {
  const body = raw.toString('utf8');
  return {
    status,
    headers,
    body,
    json: <T>() => JSON.parse(body) as T,
    header(name) {
      const value = headers[name.toLowerCase()];
      return Array.isArray(value) ? value[0] : value;
    },
  };
}

function tlsOptions(tls: HttpRequestOptions['tls']): TlsRequestOptions {
  if (!tls) return {};
  return {
    ca: readFileSync(tls.ca),
    ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}),
    ...(tls.key ? { key: readFileSync(tls.key) } : {}),
    ...(tls.serverIdentity ? { checkServerIdentity: spiffeIdentityCheck(tls.serverIdentity) } : {}),
  };
}

function spiffeIdentityCheck(expected: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const uris = (cert.subjectaltname ?? '').split(', ').filter((san) => san.startsWith('URI:')).map((san) => san.slice(4));
    return uris.includes(expected) ? undefined : new Error(`server identity ${uris.join(', ') || '(none)'} is not ${expected}`);
  };
}
