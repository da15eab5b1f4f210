import { readFileSync } from 'node:fs';
import { request as plainRequest, type Agent, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as tlsRequest, type RequestOptions as TlsRequestOptions } from 'node:https';

export interface HttpRequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  /** A keep-alive agent to share connections; a fresh connection otherwise. */
  readonly agent?: Agent;
  readonly timeoutMs?: number;
  /** For https URLs: PEM file paths of the CA to trust and of the client certificate to present. */
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
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
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body,
          json: <T>() => JSON.parse(body) as T,
          header(name) {
            const value = response.headers[name.toLowerCase()];
            return Array.isArray(value) ? value[0] : value;
          },
        });
      });
    };
    const request = url.startsWith('https:') ? tlsRequest(url, { ...common, ...tlsOptions(options.tls) }, onResponse) : plainRequest(url, common, onResponse);
    request.on('timeout', () => request.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(options.body);
  });
}

function tlsOptions(tls: HttpRequestOptions['tls']): TlsRequestOptions {
  if (!tls) return {};
  return {
    ca: readFileSync(tls.ca),
    ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}),
    ...(tls.key ? { key: readFileSync(tls.key) } : {}),
  };
}
