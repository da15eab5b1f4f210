/**
 * A fixed-reply ext_proc `Process` handler on node:http2 alone (no grpc-js): gRPC framing by hand,
 * the request's kind read from its first top-level field, a pre-encoded CONTINUE of that kind
 * written back (nothing in observability_mode). The same work as the trivial grpc-js server, so
 * that the two side by side give grpc-js's own cost per message (issue 18: adopt a lean handler
 * only for ≥ 2× per message). Prints {"port":N}.
 *
 *   node --import ./bench/register-ts.mjs bench/lean-process-server.ts
 */
import { createServer, constants, type ServerHttp2Stream } from 'node:http2';
import { encodeProcessingResponse } from '../src/envoy/response-encoding.js';
import type { ProcessingRequest, ProcessingResponse } from '../src/envoy/envoy-messages.js';
import { loadRequestDecoders } from '../src/server/proto-definitions.js';

const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

function framed(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** ProcessingRequest field number → the framed CONTINUE of that kind. */
const REPLIES = new Map<number, Buffer>(
  (
    [
      [2, { request_headers: { response: {} } }],
      [3, { response_headers: { response: {} } }],
      [4, { request_body: { response: {} } }],
      [5, { response_body: { response: {} } }],
      [6, { request_trailers: {} }],
      [7, { response_trailers: {} }],
    ] as [number, ProcessingResponse][]
  ).map(([field, response]) => [field, framed(encodeProcessingResponse(response))]),
);
const OBSERVABILITY_MODE_TAG = (10 << 3) | 0;
/**
 * The request-headers reply on the one-round-trip route (deploy/envoy/ext-proc.yaml `undecided`): a
 * request leaves that route only once marked decided (x-genops-decision-id) with the route refreshed;
 * a bare CONTINUE would be routed to the `undecided` cluster, which has no endpoint (503).
 */
const REQUEST_HEADERS_DECIDED = framed(
  encodeProcessingResponse({
    request_headers: {
      response: {
        header_mutation: { set_headers: [{ header: { key: 'x-genops-decision-id', raw_value: 'floor' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }] },
        clear_route_cache: true,
      },
    },
  }),
);

/** The kind (oneof field number) of a ProcessingRequest, and whether it is sent in observability_mode. */
function inspect(message: Buffer): { kind: number; observability: boolean } {
  let kind = 0;
  let observability = false;
  let position = 0;
  while (position < message.length) {
    let tag = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = message[position++]!;
      tag |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    const field = tag >>> 3;
    const wire = tag & 7;
    if (tag === OBSERVABILITY_MODE_TAG) {
      observability = message[position++] === 1;
      continue;
    }
    if (wire === 0) {
      while (message[position++]! & 0x80);
    } else if (wire === 2) {
      let length = 0;
      shift = 0;
      do {
        byte = message[position++]!;
        length += (byte & 0x7f) * 2 ** shift;
        shift += 7;
      } while (byte & 0x80);
      if (field >= 2 && field <= 7) kind = field;
      position += length;
    } else if (wire === 1) position += 8;
    else if (wire === 5) position += 4;
    else break;
  }
  return { kind, observability };
}

/** Whether the response_body (field 5) of a ProcessingRequest has end_of_stream (its field 2) set. */
function endOfStream(message: Buffer): boolean {
  // Envoy writes fields in number order: a response_body message starts with field 5 (wire type 2).
  if (message[0] !== 0x2a) return false;
  let position = 1;
  let length = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = message[position++]!;
    length += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  const body = message.subarray(position, position + length);
  // HttpBody: body = 1 (bytes), end_of_stream = 2 (bool): the flag is the last two bytes when set.
  return body.length >= 2 && body[body.length - 2] === 0x10 && body[body.length - 1] === 1;
}

const decoders = loadRequestDecoders();
/** BodySendMode FULL_DUPLEX_STREAMED (protobufjs decodes enums as numbers). */
const FULL_DUPLEX_STREAMED = 4;

/**
 * A FULL_DUPLEX_STREAMED request body (the one-round-trip route of deploy/envoy/ext-proc.yaml) goes
 * upstream only as sent back: such chunks are decoded and echoed instead of a fixed CONTINUE.
 */
function echoed(message: Buffer): Buffer {
  const chunk = (decoders.processingRequest(message) as ProcessingRequest).request_body;
  return framed(encodeProcessingResponse({ request_body: { response: { body_mutation: { streamed_response: { body: chunk?.body ?? Buffer.alloc(0), end_of_stream: chunk?.end_of_stream === true } } } } }));
}

function serve(stream: ServerHttp2Stream): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  let pending: Buffer = Buffer.alloc(0);
  let first = true;
  let fullDuplex = false;
  stream.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      const message = pending.subarray(5, 5 + length);
      const { kind, observability } = inspect(message);
      if (first) {
        first = false;
        fullDuplex = Number((decoders.processingRequest(message) as ProcessingRequest).protocol_config?.request_body_mode) === FULL_DUPLEX_STREAMED;
      }
      // observability_mode: no reply; end the stream at the response's end (a response_body whose end_of_stream, field 2, is set).
      if (observability && kind === 5 && endOfStream(message)) {
        pending = Buffer.alloc(0);
        if (!stream.destroyed) stream.end();
        return;
      }
      pending = pending.subarray(5 + length);
      const reply = fullDuplex && kind === 4 ? echoed(message) : fullDuplex && kind === 2 ? REQUEST_HEADERS_DECIDED : REPLIES.get(kind);
      if (reply && !observability && !stream.destroyed) stream.write(reply);
    }
  });
  stream.on('end', () => {
    if (!stream.destroyed) stream.end();
  });
  stream.on('error', () => undefined);
}

const server = createServer({ streamResetBurst: 100_000, streamResetRate: 100_000 } as Parameters<typeof createServer>[0]);
server.on('stream', (stream, headers) => {
  if (headers[constants.HTTP2_HEADER_PATH] !== PROCESS_PATH) {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
    return;
  }
  serve(stream);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
