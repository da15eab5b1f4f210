import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface EchoBody {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface StartUpstreamOptions {
  /**
   * Answers one request (already recorded, body read). Return false to fall
   * back to the default: 200 with an {@link EchoBody} JSON.
   */
  readonly respond?: (request: RecordedRequest, response: ServerResponse) => boolean | void;
}

export interface Upstream {
  readonly url: string;
  readonly port: number;
  /** Every request received, in arrival order. */
  readonly requests: RecordedRequest[];
  /** The requests whose `name` header equals `value` (e.g. a per-test id). */
  requestsWith(name: string, value: string): RecordedRequest[];
  stop(): Promise<void>;
}

/** A recording HTTP upstream on a free loopback port that echoes what it got. */
export async function startUpstream(options: StartUpstreamOptions = {}): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const recorded: RecordedRequest = {
        method: incoming.method ?? '',
        path: incoming.url ?? '',
        headers: incoming.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(recorded);
      if (options.respond?.(recorded, response) === true) return;
      const echo: EchoBody = recorded;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(echo));
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    requestsWith: (name, value) => requests.filter((request) => request.headers[name.toLowerCase()] === value),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
