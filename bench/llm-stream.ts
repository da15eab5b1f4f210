/**
 * The cost of reading bodies: a streamed LLM response (OpenAI Chat Completions SSE with the usage
 * chunk) through the real Envoy with deploy/envoy/ext-proc.yaml, on the same service, Envoy and
 * upstream, two ways:
 *   - headers only: a path that is not an AI API path (the service decides on headers, no body);
 *   - body processing: /v1/chat/completions (request body BUFFERED, response body STREAMED
 *     through the service, usage read and priced);
 * plus the upstream alone. Reports time to first byte and to last byte (p50, p90, p99) and the
 * service's CPU per streamed response.
 *
 *   npm run build && node --import ./bench/register-ts.mjs bench/llm-stream.ts [--requests 300] [--concurrency 4] [--events 100] [--gap-ms 2]
 */
import { createServer, request as httpRequest, Agent } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_POLICY_PATH } from '../src/policy/default-policy.js';
import { parseArgs } from 'node:util';
import { startEnvoy } from '../src/demo/start-envoy.js';
import { startService } from '../src/demo/start-service.js';
import { openAiChatSse } from '../test/support/llm-wire.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '4' },
    events: { type: 'string', default: '100' },
    'gap-ms': { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
  },
});
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const EVENTS = Number(values.events);
const GAP_MS = Number(values['gap-ms']);
const ROUNDS = Number(values.rounds);

const TEXT = 'Paris is the capital of France. '.repeat(Math.ceil(EVENTS / 6));
const STREAM = Buffer.from(openAiChatSse({ model: 'gpt-4o-mini', usage: { input: 120, cachedInput: 0, cacheWrite: 0, output: EVENTS, reasoning: 0 }, text: TEXT, includeUsage: true }));
/** The stream cut into EVENTS writes, at event boundaries, as a provider flushes tokens. */
const PIECES = splitEvents(STREAM, EVENTS);

function splitEvents(stream: Buffer, count: number): Buffer[] {
  const ends: number[] = [];
  for (let index = stream.indexOf('\n\n'); index !== -1; index = stream.indexOf('\n\n', index + 2)) ends.push(index + 2);
  const step = Math.max(1, Math.floor(ends.length / count));
  const pieces: Buffer[] = [];
  let start = 0;
  for (let index = step - 1; index < ends.length; index += step) {
    pieces.push(stream.subarray(start, ends[index]));
    start = ends[index]!;
  }
  if (start < stream.length) pieces.push(stream.subarray(start));
  return pieces;
}

async function startUpstream(): Promise<{ port: number; close(): void }> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let index = 0;
      const next = () => {
        if (index >= PIECES.length) {
          response.end();
          return;
        }
        response.write(PIECES[index++]);
        if (GAP_MS > 0) setTimeout(next, GAP_MS);
        else setImmediate(next);
      };
      next();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, close: () => server.close() };
}

interface Timing { firstByteMs: number; lastByteMs: number; bytes: number; status: number }

function once(url: URL, agent: Agent): Promise<Timing> {
  const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, max_tokens: 512, messages: [{ role: 'user', content: 'Tell me about Paris.' }] });
  const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-genops-team': 'ml-platform', 'x-genops-customer-id': `bench-${Math.floor(Math.random() * 1e9)}`, 'x-genops-project': 'bench' };
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let first = 0;
    let bytes = 0;
    const request = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent }, (response) => {
      response.on('data', (chunk: Buffer) => {
        if (first === 0) first = performance.now();
        bytes += chunk.length;
      });
      const done = (status: number) => resolve({ firstByteMs: first - started, lastByteMs: performance.now() - started, bytes, status });
      response.on('end', () => done(response.statusCode ?? 0));
      // A stream cut short (a reset, a 504 mid-way) counts as failed, never hangs the run.
      response.on('close', () => done(response.complete ? (response.statusCode ?? 0) : 0));
      response.on('error', () => done(0));
    });
    request.setTimeout(10_000, () => request.destroy(new Error('timed out')));
    request.on('error', () => resolve({ firstByteMs: 0, lastByteMs: 0, bytes: 0, status: 0 }));
    request.end(body);
  });
}

async function measure(url: URL): Promise<Timing[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const timings: Timing[] = [];
  let next = 0;
  const worker = async () => {
    while (next < REQUESTS) {
      next++;
      timings.push(await once(url, agent));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  agent.destroy();
  return timings;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const summary = (all: Timing[]) => {
  const timings = all.filter((timing) => timing.status === 200);
  return {
  failed: all.length - timings.length,
  ttfb: [50, 90, 99].map((p) => percentile(timings.map((t) => t.firstByteMs), p)),
  ttlb: [50, 90, 99].map((p) => percentile(timings.map((t) => t.lastByteMs), p)),
  };
};
const fmt = (values: number[]) => values.map((value) => value.toFixed(2)).join(' / ');

async function main(): Promise<void> {
  const upstream = await startUpstream();
  // The headers-only variant posts to a path the service does not read: listed as headers-only (deny by default).
  const policyPath = join(tmpdir(), `genops-llm-stream-${process.pid}.yaml`);
  writeFileSync(policyPath, readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace('  rateLimits:', '  usage:\n    headersOnly: [{ prefix: /v1/stream-bench }]\n  rateLimits:'));
  const service = await startService({ policyPath, env: { LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true' } });
  const envoy = await startEnvoy({ config: 'deploy/envoy/ext-proc.yaml', vars: { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: upstream.port }, logLevel: 'error' });
  const variants: [string, URL, boolean][] = [
    ['upstream alone', new URL(`http://127.0.0.1:${upstream.port}/v1/chat/completions`), false],
    ['Envoy + ext_proc, headers only', new URL(`${envoy.url}/v1/stream-bench`), true],
    ['Envoy + ext_proc, body processing (BUFFERED + STREAMED)', new URL(`${envoy.url}/v1/chat/completions`), true],
  ];
  console.log(`streamed response: ${STREAM.length} bytes in ${PIECES.length} writes, ${GAP_MS} ms apart; ${REQUESTS} requests × ${ROUNDS} rounds, ${CONCURRENCY} in flight`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}, Node ${process.version}`);
  // Warm up every path (JIT, connections) before measuring.
  for (const [, url] of variants) for (let index = 0; index < 50; index++) await once(url, new Agent({ keepAlive: false }));
  const results = new Map<string, { timings: Timing[]; cpu: number; count: number }>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, usesService] of variants) {
      const before = cpuMs(service.process.pid);
      const timings = await measure(url);
      const cpu = usesService ? cpuMs(service.process.pid) - before : 0;
      const entry = results.get(name) ?? { timings: [], cpu: 0, count: 0 };
      entry.timings.push(...timings);
      entry.cpu += cpu;
      entry.count += timings.length;
      results.set(name, entry);
    }
  }
  console.log('\n| path | TTFB p50 / p90 / p99 ms | TTLB p50 / p90 / p99 ms | service CPU per response | not 200 |');
  console.log('|---|---|---|---|---|');
  for (const [name, { timings, cpu, count }] of results) {
    const { ttfb, ttlb, failed } = summary(timings);
    console.log(`| ${name} | ${fmt(ttfb)} | ${fmt(ttlb)} | ${cpu > 0 ? `${((cpu / count) * 1000).toFixed(0)} µs` : '—'} | ${failed} |`);
  }
  const headersOnly = summary(results.get(variants[1]![0])!.timings);
  const body = summary(results.get(variants[2]![0])!.timings);
  console.log(`\nadded by body processing over headers only: TTFB p50 +${(body.ttfb[0]! - headersOnly.ttfb[0]!).toFixed(2)} ms, p99 +${(body.ttfb[2]! - headersOnly.ttfb[2]!).toFixed(2)} ms; TTLB p50 +${(body.ttlb[0]! - headersOnly.ttlb[0]!).toFixed(2)} ms, p99 +${(body.ttlb[2]! - headersOnly.ttlb[2]!).toFixed(2)} ms`);
  await envoy.stop();
  await service.stop();
  upstream.close();
}

await main();
