import { request as httpRequest } from 'node:http';

/**
 * Sends one request and goes away once `afterChunks` chunks of the response arrived, as a client
 * that closes a streamed answer does. Resolves with the response status.
 */
export function disconnectMidResponse(target: string, options: { headers: Record<string, string>; body: string; afterChunks?: number }): Promise<number> {
  const url = new URL(target);
  const afterChunks = options.afterChunks ?? 2;
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...options.headers, 'content-length': Buffer.byteLength(options.body) } },
      (response) => {
        let chunks = 0;
        response.on('data', () => {
          if (++chunks === afterChunks) {
            request.destroy();
            resolve(response.statusCode ?? 0);
          }
        });
        response.on('error', () => undefined);
      },
    );
    // Our own destroy() surfaces as a hang-up or an abort; anything else is a real failure.
    request.on('error', (error) => (/socket hang up|aborted/.test(error.message) ? undefined : reject(error)));
    request.end(options.body);
  });
}
