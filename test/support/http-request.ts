import { request as httpRequestRaw, type Agent, type IncomingHttpHeaders } from 'node:http';

export interface HttpRequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  /** A keep-alive agent to share connections; a fresh connection otherwise. */
  readonly agent?: Agent;
  readonly timeoutMs?: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
  /** One response header as a string (first value if repeated), or undefined. */
  header(name: string): string | undefined;
}

/** One HTTP/1.1 request with node:http; resolves with the whole response. */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = Buffer.byteLength(options.body);
    const request = httpRequestRaw(
      url,
      { method: options.method ?? 'GET', headers, agent: options.agent ?? false, timeout: options.timeoutMs ?? 10_000 },
      (response) => {
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
      },
    );
    request.on('timeout', () => request.destroy(new Error(`${options.method ?? 'GET'} ${url} timed out after ${options.timeoutMs ?? 10_000} ms`)));
    request.on('error', reject);
    request.end(options.body);
  });
}
