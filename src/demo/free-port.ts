import { createServer } from 'node:net';

/**
 * A TCP port that is free on `host` right now: the kernel picks one for a
 * throw-away listener, which is closed before the port is handed out.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error(`could not allocate a free port on ${host}`))));
    });
  });
}
