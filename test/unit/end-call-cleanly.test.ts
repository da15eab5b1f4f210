/**
 * endCallCleanly on a real grpc-js server: the client, which (like Envoy's ext_proc client) never
 * half-closes, gets the reply, OK trailers, then RST_STREAM NO_ERROR — the stream is closed by the
 * server, so the client's own reset afterwards reaches a closed stream and Node builds no
 * ERR_HTTP2_STREAM_ERROR for it.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endCallCleanly } from '../../src/server/end-call-cleanly.js';

const identity = (buffer: Buffer) => buffer;
const frame = (payload: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);

describe('endCallCleanly', () => {
  let server: grpc.Server;
  let port: number;
  const reached: boolean[] = [];
  const serverStreamErrors: unknown[] = [];
  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(
      { Echo: { path: '/test.Echo/Echo', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
      {
        Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('error', (error) => serverStreamErrors.push(error));
          call.on('data', (message: Buffer) => {
            if (message.toString() === 'write-first') call.write(Buffer.from('reply'));
            reached.push(endCallCleanly(call));
          });
        },
      },
    );
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  });
  afterAll(() => server.forceShutdown());

  /** One call as Envoy makes it: a message, no half-close; resolves with what came back and how the stream closed. */
  function exchange(message: string): Promise<{ data: string; trailers: Record<string, unknown>; rstCode: number }> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
      let data = '';
      let trailers: Record<string, unknown> = {};
      stream.on('data', (chunk: Buffer) => (data += chunk.subarray(5).toString()));
      stream.on('trailers', (headers) => (trailers = headers));
      stream.on('error', reject);
      stream.on('close', () => {
        resolve({ data, trailers, rstCode: stream.rstCode });
        session.close();
      });
      stream.write(frame(Buffer.from(message)));
    });
  }

  it('ends a call after a reply: the reply, grpc-status 0, then the server closes the stream with NO_ERROR', async () => {
    const result = await exchange('write-first');
    expect(result.data).toBe('reply');
    expect(result.trailers['grpc-status']).toBe('0');
    expect(result.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(reached.at(-1)).toBe(true);
  });

  it('ends a call with no reply (trailers only) the same way', async () => {
    const result = await exchange('no-reply');
    expect(result.data).toBe('');
    expect(result.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(reached.at(-1)).toBe(true);
    expect(serverStreamErrors).toEqual([]);
  });
});
