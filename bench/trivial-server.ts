/**
 * The ceiling of the runtime (DESIGN §5): a grpc-js server with the service's
 * own proto definitions (proto-loader, same options) whose Check returns a
 * fixed OK and whose Process answers each headers message with a fixed
 * CONTINUE. No policy, no rate limit, no metrics, no spans. Run by
 * bench/run.ts on the same Node; prints {"port":N} once it listens.
 *
 *   node --import ./bench/register-ts.mjs bench/trivial-server.ts [port]
 */
import * as grpc from '@grpc/grpc-js';
import { loadServiceDefinitions } from '../src/server/proto-definitions.js';

const CHECK_OK = { status: { code: 0 } };
const REQUEST_HEADERS_CONTINUE = { request_headers: { response: {} } };
const RESPONSE_HEADERS_CONTINUE = { response_headers: { response: {} } };

const definitions = loadServiceDefinitions();
const server = new grpc.Server();

server.addService(definitions.authorization, {
  Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, CHECK_OK),
});
server.addService(definitions.externalProcessor, {
  Process: (call: grpc.ServerDuplexStream<{ request_headers?: unknown }, unknown>) => {
    let open = true;
    call.on('data', (request: { request_headers?: unknown }) => {
      if (open) call.write(request.request_headers ? REQUEST_HEADERS_CONTINUE : RESPONSE_HEADERS_CONTINUE);
    });
    call.on('end', () => {
      if (open) call.end();
      open = false;
    });
    call.on('cancelled', () => {
      open = false;
    });
    call.on('error', () => {
      open = false;
    });
  },
});

const port = await new Promise<number>((resolve, reject) => {
  server.bindAsync(`127.0.0.1:${process.argv[2] ?? 0}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
});
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.once('SIGTERM', () => server.forceShutdown());
process.once('SIGINT', () => server.forceShutdown());
