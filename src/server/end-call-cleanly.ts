import { constants, type ServerHttp2Stream } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

/**
 * Ends a bidirectional call whose peer will send nothing more: OK trailers, then RST_STREAM with
 * NO_ERROR on its HTTP/2 stream — a server that has sent a complete response may ask the client to
 * stop sending the request this way, without error (RFC 9113 §8.1).
 *
 * Why: Envoy's ext_proc client never half-closes a stream; once it has what it needs (even after the
 * trailers) it resets the stream with INTERNAL_ERROR, and for every stream reset with a code other
 * than NO_ERROR or CANCEL Node builds an ERR_HTTP2_STREAM_ERROR with its stack (10–13 µs of CPU a
 * stream, bench/RESULTS.md "p99 tail"). A stream this side has closed with NO_ERROR is closed when
 * Envoy's reset arrives, and nghttp2 drops the reset.
 *
 * grpc-js does not expose a call's HTTP/2 stream; it is reached through the call's fields. Where they
 * are not there (another grpc-js, an interceptor in between) the call is only ended with OK, and Envoy
 * resets it as before. Returns whether the stream was reached (test/unit/end-call-cleanly.test.ts
 * fails if a grpc-js upgrade hides it).
 */
/** Event-loop turns to wait for the trailers to leave; a stream whose peer reads slowly is left to its peer's reset. */
const SETTLE_TURNS = 8;

export function endCallCleanly(call: grpc.ServerDuplexStream<unknown, unknown>): boolean {
  const stream = http2StreamOf(call);
  if (stream) {
    // The reset must leave after the trailers: nghttp2 sends a RST_STREAM submitted earlier ahead of
    // them (and drops them), so it waits until the stream's own END_STREAM has gone (state.localClose).
    const closeAhead = (turns = SETTLE_TURNS) => {
      if (stream.closed) return;
      if (stream.state.localClose) stream.close(constants.NGHTTP2_NO_ERROR);
      else if (turns > 0) setImmediate(closeAhead, turns - 1);
    };
    // grpc-js sends OK as trailers after a reply, or as a trailers-only response when none was sent.
    const sendTrailers = stream.sendTrailers;
    stream.sendTrailers = function (this: ServerHttp2Stream, headers) {
      sendTrailers.call(this, headers);
      setImmediate(closeAhead);
    };
    const respond = stream.respond;
    stream.respond = function (this: ServerHttp2Stream, headers, options) {
      respond.call(this, headers, options);
      if (options?.endStream) setImmediate(closeAhead);
    };
  }
  call.end();
  return stream !== undefined;
}

function http2StreamOf(call: grpc.ServerDuplexStream<unknown, unknown>): ServerHttp2Stream | undefined {
  const stream = (call as unknown as { call?: { stream?: Partial<ServerHttp2Stream> } }).call?.stream;
  if (!stream || typeof stream.sendTrailers !== 'function' || typeof stream.respond !== 'function' || typeof stream.close !== 'function') return undefined;
  return stream as ServerHttp2Stream;
}
