/**
 * What a stream reset costs a node:http2 server: server CPU per stream (a forked server that
 * answers and leaves the stream open; 16 in flight) when the client ends each stream with
 * RST_STREAM INTERNAL_ERROR (2: what Envoy's ext_proc client sends), CANCEL (8) or NO_ERROR (0).
 * For any code but 0 and 8 Node's Http2Stream._destroy builds an ERR_HTTP2_STREAM_ERROR with its
 * stack. STL=0 runs the server with Error.stackTraceLimit = 0 (how much of it is the stack).
 *
 *   [N=30000] [STL=0] npx node bench/stream-reset-cost.mjs
 */
import http2 from 'node:http2';
import { fork } from 'node:child_process';
const N = Number(process.env.N ?? 20000);
if (process.argv[2] === 'server') {
  if (process.env.STL) Error.stackTraceLimit = Number(process.env.STL);
  const server = http2.createServer({ streamResetBurst: 1e6, streamResetRate: 1e6 });
  let errors = 0;
  server.on('stream', (stream) => {
    stream.on('error', () => errors++);
    stream.respond({ ':status': 200 });
    stream.write('x');
  });
  server.listen(0, () => process.send({ port: server.address().port }));
  process.on('message', (m) => {
    if (m === 'cpu') { const u = process.cpuUsage(); process.send({ cpu: u.user + u.system, errors }); }
  });
} else {
  const child = fork(new URL(import.meta.url).pathname, ['server']);
  const port = await new Promise((r) => child.once('message', (m) => r(m.port)));
  const cpu = () => new Promise((r) => { child.once('message', r); child.send('cpu'); });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const run = async (code) => {
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next++ < N) await new Promise((resolve) => {
        const req = session.request({ ':path': '/', ':method': 'POST' }, { endStream: false });
        req.on('data', () => req.close(code));
        req.on('close', resolve);
        req.on('error', () => {});
      });
    }));
  };
  await run(8); // warm
  const rows = [];
  for (const round of [1, 2, 3]) for (const code of [2, 8, 0]) {
    const a = await cpu(); await run(code); const b = await cpu();
    rows.push(`round ${round} rst code ${code}: ${((b.cpu - a.cpu) / N).toFixed(1)} µs server CPU per stream, errors +${b.errors - a.errors}`);
  }
  console.log(rows.join('\n'));
  session.close(); child.kill();
}
