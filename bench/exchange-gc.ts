/**
 * The p99 tail of the AI exchange (issue 18): what the garbage collector and the event loop do in
 * the service under a steady rate of ext_proc JSON exchanges. Starts `node <SERVICE_NODE_FLAGS>
 * --trace-gc-nvp <variant flags> <entry>` per variant and drives it at --rate exchanges a second,
 * open loop, with a client on node:http2 that behaves as Envoy's ext_proc client: each message of
 * bench/lib/ai-exchange-wire.ts written when the previous one is answered, the stream never
 * half-closed, and reset with INTERNAL_ERROR --reset-after-ms after the last reply (Envoy's
 * deferred stream deletion; 0: on the next turn of the client's loop) unless the service closed it first.
 *
 * Per variant (means over --rounds, run interleaved: A B A B): V8's pauses by kind from
 * --trace-gc-nvp (count a second, median and max ms), bytes allocated and promoted per exchange
 * (the sum of the trace's `allocated=` and `promoted=` over the run), the event-loop delay
 * histogram and the GC pause histogram from the service's /metrics, the service's CPU per
 * exchange (/proc), how many streams the service closed itself (no reset error for Node to build),
 * and the client's latency. Pause counts and bytes are robust on a shared host; absolute ms are not.
 *
 *   npm run build && npx node --experimental-transform-types --import ./bench/register-ts.mjs bench/exchange-gc.ts \
 *     [--rate 1000] [--seconds 15] [--rounds 2] ["--variants=-;--max-semi-space-size=2;entry=/path/to/other/dist/main.js"]
 *
 * A variant is a space-separated list of node flags (after the shipped SERVICE_NODE_FLAGS) and
 * `entry=<main.js>` (another build of the service, e.g. main's, for a before/after in one run); `-` for none.
 */
import http2 from 'node:http2';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/demo/free-port.js';
import { spawnManaged, waitUntilReady } from '../src/demo/managed-process.js';
import { SERVICE_ENTRY } from '../src/demo/repo-root.js';
import { SERVICE_NODE_FLAGS } from '../src/server/service-node-flags.js';
import { aiExchangeWire, type ExchangeWire } from './lib/ai-exchange-wire.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '2' },
    variants: { type: 'string', default: '-' },
    warmup: { type: 'string', default: '3' },
    'reset-after-ms': { type: 'string', default: '1' },
    'alloc-profile': { type: 'string', default: '0' },
    'gc-log': { type: 'string' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const WARMUP_SECONDS = Number(values.warmup);
const ROUNDS = Number(values.rounds);
/**
 * N > 0: the service runs with --inspect and V8's sampling heap profiler lists the top N allocating
 * functions — of everything allocated (objects a GC collected included), or with `N:promoted` of
 * what outlived the scavenges (objects only a mark-compact collected, or still live): the promotion.
 */
const [ALLOC_TOP, ALLOC_WHAT] = [Number(values['alloc-profile'].split(':')[0]), values['alloc-profile'].split(':')[1] === 'promoted' ? 'promoted' : 'allocated'];
const RESET_AFTER_MS = Number(values['reset-after-ms']);
const WIRE = aiExchangeWire(500).json;
const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

const policyText = readFileSync(new URL('./policy.yaml', import.meta.url), 'utf8').replace(
  '  rateLimits:',
  '  budgets:\n    - { name: bench-team, key: [team], amount: "9000000", period: monthly, timeZone: UTC }\n  rateLimits:',
);
const policyPath = join(tmpdir(), `genops-gc-policy-${process.pid}.yaml`);
writeFileSync(policyPath, policyText);

const frame = (message: Buffer) => {
  const header = Buffer.allocUnsafe(5);
  header[0] = 0;
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
};

interface ExchangeResult { readonly ms: number; readonly closedByService: boolean; readonly ok: boolean }

/** One exchange as Envoy's ext_proc client makes it (see the file comment). */
function exchange(session: http2.ClientHttp2Session, wire: ExchangeWire): Promise<ExchangeResult> {
  const messages = [wire.requestHeaders, wire.requestBody, wire.responseHeaders, ...wire.body].map(frame);
  const started = performance.now();
  return new Promise((resolve) => {
    const stream = session.request({ ':method': 'POST', ':path': PROCESS_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
    let pending: Buffer = Buffer.alloc(0);
    let next = 0;
    let replies = 0;
    let ok = true;
    let resetByClient = false;
    stream.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        pending = pending.subarray(5 + pending.readUInt32BE(1));
        replies++;
        if (next < messages.length) stream.write(messages[next++]!);
        else if (replies === messages.length) {
          // Envoy resets the stream once the exchange is done: 0.37 ms after the last reply in the
          // RESULTS timeline; here after --reset-after-ms (a 1 ms timer), or on the next turn (0).
          const reset = () => {
            if (stream.closed) return;
            resetByClient = true;
            stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          };
          if (RESET_AFTER_MS > 0) setTimeout(reset, RESET_AFTER_MS);
          else setImmediate(reset);
        }
      }
    });
    stream.on('trailers', (trailers) => {
      if (trailers['grpc-status'] !== '0') ok = false;
    });
    stream.on('error', () => undefined);
    stream.on('close', () => resolve({ ms: performance.now() - started, closedByService: !resetByClient, ok: ok && replies === messages.length }));
    stream.write(messages[next++]!);
  });
}

interface ProfileNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: ProfileNode[] }

/** V8's sampling heap profiler over the inspector protocol, counting what a GC already collected too (allocation, not retention). */
async function startAllocationSampling(host: string, port: number): Promise<{ stop(exchanges: number): Promise<string> }> {
  const [target] = (await (await fetch(`http://${host}:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(target!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let id = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  };
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      waiting.set(++id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call('HeapProfiler.enable');
  await call('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: ALLOC_WHAT === 'allocated' });
  return {
    async stop(exchanges) {
      const { profile } = (await call('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
      socket.close();
      const bySite = new Map<string, number>();
      let total = 0;
      const walk = (node: ProfileNode) => {
        if (node.selfSize > 0) {
          const { functionName, url, lineNumber } = node.callFrame;
          const site = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
          bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
          total += node.selfSize;
        }
        for (const child of node.children) walk(child);
      };
      walk(profile.head);
      const top = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, ALLOC_TOP);
      return [`total ${(total / 1024 / exchanges).toFixed(1)} KB an exchange`, ...top.map(([site, bytes]) => `${(bytes / exchanges).toFixed(0).padStart(7)} B  ${((100 * bytes) / total).toFixed(1).padStart(5)} %  ${site}`)].join('\n');
    },
  };
}

function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** Cumulative histogram buckets of one metric (and label filter) from a Prometheus text page. */
function buckets(text: string, name: string, labelFilter = ''): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(labelFilter)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le) found.set(le, Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return found;
}

interface GcEvent { readonly kind: string; readonly pause: number; readonly allocated: number; readonly promoted: number }

function gcEvents(lines: readonly string[]): GcEvent[] {
  const events: GcEvent[] = [];
  for (const line of lines) {
    const kind = / gc=(\w+)/.exec(line)?.[1];
    if (!kind) continue;
    const field = (name: string) => Number(new RegExp(` ${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    events.push({ kind, pause: field('pause'), allocated: field('allocated'), promoted: field('promoted') });
  }
  return events;
}

interface Figures {
  readonly exchanges: number;
  readonly failed: number;
  readonly closedByService: number;
  readonly cpuUs: number;
  readonly allocatedKb: number;
  readonly promotedKb: number;
  readonly pauses: Record<string, { perSecond: number; median: number; max: number; totalMsPerSecond: number }>;
  readonly loopDelay: Map<string, number>;
  readonly latency: { p50: number; p99: number; p999: number };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

async function run(variant: readonly string[]): Promise<Figures> {
  const entry = variant.find((token) => token.startsWith('entry='))?.slice('entry='.length) ?? SERVICE_ENTRY;
  const flags = variant.filter((token) => token.startsWith('-'));
  const host = '127.0.0.1';
  const [grpcPort, adminPort] = [await freePort(host), await freePort(host)];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, GENOPS_LISTEN_HOST: host, GENOPS_GRPC_PORT: String(grpcPort), GENOPS_ADMIN_PORT: String(adminPort), GENOPS_POLICY: policyPath, LOG_LEVEL: 'info', OTEL_SDK_DISABLED: 'true' };
  const inspectPort = ALLOC_TOP > 0 ? await freePort(host) : undefined;
  const child = spawnManaged('genops-mesh', process.execPath, [...SERVICE_NODE_FLAGS, '--trace-gc-nvp', ...(inspectPort ? [`--inspect=${host}:${inspectPort}`] : []), ...flags, entry], env);
  const adminUrl = `http://${host}:${adminPort}`;
  try {
    await waitUntilReady(child, `${adminUrl}/readyz`, 15_000);
    const session = http2.connect(`http://${host}:${grpcPort}`);
    await new Promise((resolve) => session.once('connect', resolve));
    const drive = async (seconds: number) => {
      const results: ExchangeResult[] = [];
      const inFlight = new Set<Promise<void>>();
      const begin = performance.now();
      let started = 0;
      while (performance.now() - begin < seconds * 1000) {
        const due = Math.floor(((performance.now() - begin) / 1000) * RATE);
        while (started < due) {
          started++;
          const promise: Promise<void> = exchange(session, WIRE).then((result) => void results.push(result)).finally(() => inFlight.delete(promise));
          inFlight.add(promise);
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await Promise.all(inFlight);
      return results;
    };
    await drive(WARMUP_SECONDS);
    const gcLinesBefore = child.stdoutLines.length;
    const metricsBefore = await (await fetch(`${adminUrl}/metrics`)).text();
    const profiler = inspectPort ? await startAllocationSampling(host, inspectPort) : undefined;
    const cpuBefore = cpuMicros(child.pid);
    const results = await drive(SECONDS);
    const cpuUsed = cpuMicros(child.pid) - cpuBefore;
    if (profiler) console.log(`\nWhere the bytes ${ALLOC_WHAT === 'promoted' ? 'that outlive the scavenges' : ''} are allocated (sampled), per exchange, ${variant.join(' ') || '(shipped)'}:\n${await profiler.stop(results.length)}`);
    const metricsAfter = await (await fetch(`${adminUrl}/metrics`)).text();
    session.close();
    const gcLines = child.stdoutLines.slice(gcLinesBefore);
    // --gc-log FILE: the measured part's --trace-gc-nvp lines, appended per run (every phase of every pause).
    if (values['gc-log']) appendFileSync(values['gc-log'], `# ${variant.join(' ') || '(shipped)'}\n${gcLines.filter((line) => line.includes(' gc=')).join('\n')}\n`);
    const events = gcEvents(gcLines);
    const pauses: Figures['pauses'] = {};
    for (const kind of new Set(events.map((event) => event.kind))) {
      const list = events.filter((event) => event.kind === kind).map((event) => event.pause).sort((a, b) => a - b);
      pauses[kind] = { perSecond: list.length / SECONDS, median: percentile(list, 0.5), max: list.at(-1) ?? 0, totalMsPerSecond: list.reduce((sum, value) => sum + value, 0) / SECONDS };
    }
    const before = buckets(metricsBefore, 'genops_eventloop_delay_seconds');
    const loopDelay = new Map([...buckets(metricsAfter, 'genops_eventloop_delay_seconds')].map(([le, count]) => [le, count - (before.get(le) ?? 0)]));
    const latencies = results.map((result) => result.ms).sort((a, b) => a - b);
    const done = results.length;
    return {
      exchanges: done,
      failed: results.filter((result) => !result.ok).length,
      closedByService: results.filter((result) => result.closedByService).length,
      cpuUs: cpuUsed / Math.max(1, done),
      allocatedKb: events.reduce((sum, event) => sum + event.allocated, 0) / 1024 / Math.max(1, done),
      promotedKb: events.reduce((sum, event) => sum + event.promoted, 0) / 1024 / Math.max(1, done),
      pauses,
      loopDelay,
      latency: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), p999: percentile(latencies, 0.999) },
    };
  } finally {
    await child.stop().catch(() => undefined);
  }
}

const mean = (list: number[]) => list.reduce((sum, value) => sum + value, 0) / Math.max(1, list.length);
const fixed = (value: number, digits = 1) => value.toFixed(digits);

function row(label: string, runs: Figures[]): string {
  const pause = (kind: string) => {
    const present = runs.map((figures) => figures.pauses[kind]).filter((entry) => entry !== undefined);
    if (present.length === 0) return '0';
    return `${fixed(mean(present.map((entry) => entry.perSecond)), 2)}/s · ${fixed(mean(present.map((entry) => entry.median)))} / ${fixed(Math.max(...present.map((entry) => entry.max)))} ms`;
  };
  const gcShare = mean(runs.map((figures) => Object.values(figures.pauses).reduce((sum, entry) => sum + entry.totalMsPerSecond, 0)));
  const late = (le: string) => {
    const totals = runs.map((figures) => figures.loopDelay.get('+Inf') ?? 0);
    const over = runs.map((figures) => (figures.loopDelay.get('+Inf') ?? 0) - (figures.loopDelay.get(le) ?? 0));
    return `${fixed((100 * over.reduce((a, b) => a + b, 0)) / Math.max(1, totals.reduce((a, b) => a + b, 0)), 2)} %`;
  };
  return `| ${label} | ${runs.map((figures) => figures.exchanges).join(', ')} (${runs.reduce((sum, figures) => sum + figures.failed, 0)} failed) | ${fixed(mean(runs.map((figures) => figures.cpuUs)), 0)} | ${fixed(mean(runs.map((figures) => figures.allocatedKb)))} | ${fixed(mean(runs.map((figures) => figures.promotedKb)), 2)} | ${pause('s')} | ${pause('mmc')} | ${pause('mc')} | ${fixed(gcShare)} | ${late('0.002')} · ${late('0.005')} · ${late('0.01')} | ${fixed((100 * mean(runs.map((figures) => figures.closedByService / Math.max(1, figures.exchanges)))))} % | ${fixed(mean(runs.map((figures) => figures.latency.p50)), 2)} / ${fixed(mean(runs.map((figures) => figures.latency.p99)), 2)} / ${fixed(mean(runs.map((figures) => figures.latency.p999)), 2)} |`;
}

const variants = values.variants.split(';').map((variant) => (variant.trim() === '-' ? [] : variant.trim().split(/\s+/)));
console.log(`load average before: ${loadavg().map((value) => value.toFixed(2)).join(' ')}; node ${process.version}; ${RATE}/s JSON exchanges for ${SECONDS} s (after ${WARMUP_SECONDS} s warm-up), ${ROUNDS} rounds interleaved; client reset ${RESET_AFTER_MS} ms after the last reply; shipped flags ${SERVICE_NODE_FLAGS.join(' ')}`);
const runs = variants.map(() => [] as Figures[]);
for (let round = 0; round < ROUNDS; round++) {
  for (const [index, variant] of variants.entries()) {
    runs[index]!.push(await run(variant));
    console.error(`round ${round + 1}, variant ${variant.join(' ') || '(shipped)'} done; load ${loadavg()[0]!.toFixed(2)}`);
  }
}
console.log('\n| variant (after the shipped flags) | exchanges (failed) | service CPU µs / exchange | KB allocated / exchange | KB promoted / exchange | scavenges: a second · median / max ms | minor mark-compacts | mark-compacts: a second · median / max ms | GC pause ms a second | event loop late > 2 · 5 · 10 ms (share of samples) | streams the service closed itself | client p50 / p99 / p99.9 ms |');
console.log('|---|---|---:|---:|---:|---|---|---|---:|---|---:|---|');
for (const [index, variant] of variants.entries()) console.log(row(variant.join(' ') || '(shipped)', runs[index]!));
console.log(`\nload average after: ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
