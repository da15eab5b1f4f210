/**
 * The ceiling of the runtime (DESIGN §5): a grpc-js server with the service's
 * own proto definitions (proto-loader, same options) whose Check returns a
 * fixed OK and whose Process answers each message with a fixed CONTINUE of
 * its phase. No policy, no rate limit, no metrics, no spans. Run by
 * bench/run.ts on the same Node; prints {"port":N} once it listens.
 *
 *   node --import ./bench/register-ts.mjs bench/trivial-server.ts [port]
 */
import * as grpc from '@grpc/grpc-js';
import { loadServiceDefinitions } from '../src/server/proto-definitions.js';

const CHECK_OK = { status: { code: 0 } };
const REQUEST_HEADERS_CONTINUE = { request_headers: { response: {} } };
/**
 * On the one-round-trip route (deploy/envoy/ext-proc.yaml `undecided`) a request leaves only after a
 * decision: the service marks it (x-genops-decision-id) and refreshes the route; a bare CONTINUE would be
 * routed to the `undecided` cluster, which has no endpoint (503). The floor does the same minimum.
 */
const REQUEST_HEADERS_DECIDED = {
  request_headers: {
    response: {
      header_mutation: { set_headers: [{ header: { key: 'x-genops-decision-id', raw_value: Buffer.from('floor') }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }] },
      clear_route_cache: true,
    },
  },
};
const REQUEST_BODY_CONTINUE = { request_body: { response: {} } };
const RESPONSE_HEADERS_CONTINUE = { response_headers: { response: {} } };
const RESPONSE_BODY_CONTINUE = { response_body: { response: {} } };

type ProcessingRequest = {
  request_headers?: unknown;
  request_body?: { body?: Buffer; end_of_stream?: boolean };
  response_headers?: unknown;
  response_body?: unknown;
  observability_mode?: boolean;
  protocol_config?: { request_body_mode?: string };
};

/**
 * The CONTINUE of the phase the message belongs to; a FULL_DUPLEX_STREAMED request body (the
 * one-round-trip route of deploy/envoy/ext-proc.yaml) goes upstream only as sent back, so it is echoed.
 */
function continueFor(request: ProcessingRequest, fullDuplex: boolean): unknown {
  if (request.request_headers) return fullDuplex ? REQUEST_HEADERS_DECIDED : REQUEST_HEADERS_CONTINUE;
  if (request.request_body && fullDuplex) return { request_body: { response: { body_mutation: { streamed_response: { body: request.request_body.body ?? Buffer.alloc(0), end_of_stream: request.request_body.end_of_stream === true } } } } };
  if (request.request_body) return REQUEST_BODY_CONTINUE;
  if (request.response_body) return RESPONSE_BODY_CONTINUE;
  return RESPONSE_HEADERS_CONTINUE;
}

const definitions = loadServiceDefinitions();
const server = new grpc.Server();

server.addService(definitions.authorization, {
  Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, CHECK_OK),
});
server.addService(definitions.externalProcessor, {
  Process: (call: grpc.ServerDuplexStream<ProcessingRequest, unknown>) => {
    let open = true;
    let fullDuplex = false;
    call.on('data', (request: ProcessingRequest) => {
      if (request.protocol_config) fullDuplex = request.protocol_config.request_body_mode === 'FULL_DUPLEX_STREAMED';
      // observability_mode (the metering filter): Envoy expects no reply (one sent anyway can stall the
      // response); the stream is ended at the response's end, as genops-mesh does, instead of lingering
      // until Envoy's deferred_close_timeout.
      if (open && !request.observability_mode) call.write(continueFor(request, fullDuplex));
      else if (open && (request as { response_body?: { end_of_stream?: boolean } }).response_body?.end_of_stream) {
        open = false;
        call.end();
      }
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
