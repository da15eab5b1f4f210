/**
 * Where the time of one AI exchange goes through Envoy's ext_proc (issue 18), side by side in one
 * run on the same Envoy build, upstream and client:
 *
 *   - the timeline of one exchange: every ext_proc stream event as the service sees it (open,
 *     message kind and size, reply, half-close, reset), with µs timestamps (LOG_LEVEL=trace);
 *   - per variant: the messages Envoy sends and receives per exchange (its ext_proc stats), the
 *     backend's CPU per exchange (/proc), and the client's latency (p50, p90, p99), for a JSON
 *     chat completion and for a 500-chunk SSE answer with usage, a budget in force.
 *
 * Variants: the shipped config (observed metering: the response goes to a second ext_proc filter
 * in observability_mode), its documented synchronous mode (every response chunk waits for the
 * service), and the same shipped filters calling the trivial grpc-js server and a fixed-reply Go
 * ext_proc server (the transport floors), and Envoy alone.
 *
 *   npm run build && .tools/bin/genops-loadgen exists (scripts/bench-setup.sh), then
 *   PATH=node_modules/.bin:$PATH node --import ./bench/register-ts.mjs bench/ai-exchange.ts [--requests 2000] [--streams 60] [--concurrency 4]
 */
import { request as httpRequest, Agent } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../src/demo/repo-root.js';
import { startService } from '../src/demo/start-service.js';
import { startEnvoy } from '../src/demo/start-envoy.js';
import { writeEnvoyTemplate, type EnvoyVariant } from './lib/envoy-configs.js';
import { Fixtures, type EnvoyBackend } from './lib/fixtures.js';

export interface AiExchangeOptions {
  /** JSON exchanges per variant and round. */
  readonly requests: number;
  /** SSE streams (500 chunks, 2 ms apart) per variant and round. */
  readonly streams: number;
  /** Requests in flight. */
  readonly concurrency: number;
  readonly rounds: number;
  readonly note: (message: string) => void;
}

const SSE_CHUNKS = 500;

const HEADERS: Record<string, string> = {
  'content-type': 'application/json',
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': 'cust-0000001',
  'x-genops-project': 'support-chatbot',
  'x-genops-customer-tier': 'premium',
  'x-genops-environment': 'production',
};
const JSON_BODY = JSON.stringify({ model: 'claude-opus', max_tokens: 256, messages: [{ role: 'user', content: 'Summarize the ticket, please.' }] });
const SSE_BODY = JSON.stringify({ model: 'claude-opus', max_tokens: 1024, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Summarize the ticket, please.' }] });

function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime (fields 14 and 15 of stat; 12 and 13 after the command) in clock ticks.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

async function envoyStats(adminUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${adminUrl}/stats?filter=ext_proc`)).text();
  const stats: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^(\S+): (\d+)$/.exec(line.trim());
    if (match) stats[match[1]!] = Number(match[2]);
  }
  return stats;
}

interface LoadResult { latencies: number[]; failed: number; bytes: number }

async function load(url: string, body: string, total: number, concurrency: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let failed = 0;
  let bytes = 0;
  let next = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const startedAt = performance.now();
      const request = httpRequest(url, { method: 'POST', agent, headers: { ...HEADERS, 'content-length': Buffer.byteLength(body) } }, (response) => {
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('end', () => {
          if (response.statusCode === 200) latencies.push(performance.now() - startedAt);
          else failed++;
          resolve();
        });
        response.on('aborted', () => {
          failed++;
          resolve();
        });
      });
      request.setTimeout(30_000, () => request.destroy(new Error('timeout')));
      request.on('error', () => {
        failed++;
        resolve();
      });
      request.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        await one();
      }
    }),
  );
  agent.destroy();
  return { latencies, failed, bytes };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Row { variant: string; kind: 'json' | 'sse'; exchanges: number; failed: number; cpuUs: number; p50: number; p90: number; p99: number; sent: number; received: number; streams: number }

const ms = (value: number) => value.toFixed(2);

/** Runs the comparison and returns its Markdown (npm run bench -- --scenario envoy/ai-exchange, or this file alone). */
export async function runAiExchange(options: AiExchangeOptions): Promise<string> {
  const { requests: REQUESTS, streams: STREAMS, concurrency: CONCURRENCY, rounds: ROUNDS, note } = options;
  const out: string[] = [];
  const loadgen = join(REPO_ROOT, '.tools/bin/genops-loadgen');
  const workDir = mkdtempSync(join(tmpdir(), 'genops-ai-exchange-'));
  const policyPath = join(REPO_ROOT, 'bench/policy-ai-exchange.yaml');
  const fixtures = new Fixtures({ loadgen, workDir, policyPath, serviceNodeOptions: '', onNote: note });
  const before = loadavg();
  const startedAt = new Date();
  try {
    const upstream = await fixtures.upstream();

    // 1. The timeline of one exchange, as the service sees it.
    const traced = await startService({ policyPath, env: { LOG_LEVEL: 'trace', OTEL_SDK_DISABLED: 'true' } });
    const timelines: string[] = [];
    try {
      for (const variant of ['ext-proc', 'ext-proc-sync'] as const) {
        const envoy = await startEnvoy({ config: writeEnvoyTemplate(variant, join(workDir, 'timeline')), vars: { GENOPS_HOST: traced.host, GENOPS_PORT: traced.grpcPort, UPSTREAM_PORT: upstream.port } });
        try {
          for (const [kind, path, body] of [['json', '/v1/chat/completions', JSON_BODY], ['sse (500 chunks 2 ms apart; first and last 10 events shown)', '/stream/v1/chat/completions?gap_us=2000', SSE_BODY]] as const) {
            await load(`${envoy.url}${path}`, body, 20, 1); // warm
            const mark = traced.logs().length;
            const clientStart = performance.now();
            await load(`${envoy.url}${path}`, body, 1, 1);
            const clientMs = performance.now() - clientStart;
            await new Promise((resolve) => setTimeout(resolve, 300));
            const events = traced.logs().slice(mark).filter((line) => line.event === 'ext_proc_stream') as { stream: number; step: string; t_us: number; kind?: string; bytes?: number; end?: boolean; observed?: string }[];
            // Only the streams this request opened (the warm-up's last events may be logged late).
            const opened = new Set(events.filter((event) => event.step === 'open').map((event) => event.stream));
            events.splice(0, events.length, ...events.filter((event) => opened.has(event.stream)));
            const t0 = events[0]?.t_us ?? 0;
            const lines = events.map((event) => `+${((event.t_us - t0) / 1000).toFixed(3)} ms  stream ${event.stream}  ${event.step}${event.kind ? ` ${event.kind}` : ''}${event.bytes !== undefined ? ` ${event.bytes} B` : ''}${event.end ? ' end_of_stream' : ''}${event.observed ? ` (${event.observed})` : ''}`);
            const shown = lines.length > 24 ? [...lines.slice(0, 10), `  … ${lines.length - 20} more events …`, ...lines.slice(-10)] : lines;
            timelines.push(`#### ${variant}, ${kind}: ${events.filter((event) => event.step === 'message').length} messages on ${new Set(events.map((event) => event.stream)).size} streams, client saw ${ms(clientMs)} ms\n\n\`\`\`\n${shown.join('\n')}\n\`\`\``);
          }
        } finally {
          await envoy.stop();
        }
      }
    } finally {
      await traced.stop();
    }

    // 2. Side by side, in interleaved rounds.
    // The shipped config with genops-mesh on a Unix socket (GENOPS_GRPC_SOCKET), as a sidecar runs it.
    const socket = join(workDir, 'genops.sock');
    const udsService = () =>
      fixtures.shared('service:uds', () => startService({ policyPath, env: { GENOPS_GRPC_SOCKET: socket, OTEL_SDK_DISABLED: 'true', LOG_LEVEL: 'info' } }), (service) => service.stop({ timeoutMs: 15_000 }).catch(() => undefined));
    const udsEnvoy = () =>
      fixtures.shared(
        'envoy:uds',
        async () => {
          await udsService();
          return startEnvoy({ config: writeEnvoyTemplate('ext-proc', join(workDir, 'uds'), { unixSocket: true }), vars: { GENOPS_SOCKET: socket, UPSTREAM_PORT: upstream.port } });
        },
        (envoy) => envoy.stop().catch(() => undefined),
      );
    const variants: [EnvoyVariant, EnvoyBackend | 'uds', string][] = [
      ['envoy-alone', 'plain', 'Envoy alone → upstream'],
      ['ext-proc', 'plain', 'ext_proc → genops-mesh, observed metering (shipped)'],
      ['ext-proc-sync', 'plain', 'ext_proc → genops-mesh, synchronous metering'],
      ['ext-proc', 'uds', 'ext_proc → genops-mesh over a Unix socket, observed metering'],
      ['ext-proc', 'trivial', 'shipped filters → trivial grpc-js server'],
      ['ext-proc', 'lean', 'shipped filters → the same fixed replies on node:http2 alone (no grpc-js)'],
      ['ext-proc', 'go', 'shipped filters → fixed-reply Go ext_proc server'],
    ];
    const rows = new Map<string, Row[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [variant, backend, title] of variants) {
        const envoy = backend === 'uds' ? await udsEnvoy() : await fixtures.envoy(variant, backend);
        const target = variant === 'envoy-alone' ? undefined : backend === 'uds' ? (await udsService()).process.pid : backend === 'plain' ? (await fixtures.service('plain', 'envoy')).process.pid : backend === 'trivial' ? (await fixtures.trivial('envoy')).process.pid : backend === 'lean' ? (await fixtures.lean()).process.pid : (await fixtures.goExtProc()).process.pid;
        for (const [kind, path, body, total] of [['json', '/v1/chat/completions', JSON_BODY, REQUESTS], ['sse', '/stream/v1/chat/completions?gap_us=2000', SSE_BODY, STREAMS]] as const) {
          await load(`${envoy.url}${path}`, body, Math.min(200, total), CONCURRENCY); // warm
          const statsBefore = await envoyStats(envoy.adminUrl);
          const cpuBefore = target ? cpuMicros(target) : 0;
          const result = await load(`${envoy.url}${path}`, body, total, CONCURRENCY);
          await new Promise((resolve) => setTimeout(resolve, 200));
          const cpuAfter = target ? cpuMicros(target) : 0;
          const statsAfter = await envoyStats(envoy.adminUrl);
          const sum = (suffix: string) => Object.keys(statsAfter).filter((name) => name.endsWith(suffix)).reduce((total, name) => total + statsAfter[name]! - (statsBefore[name] ?? 0), 0);
          const sorted = [...result.latencies].sort((a, b) => a - b);
          const row: Row = {
            variant: title,
            kind,
            exchanges: result.latencies.length,
            failed: result.failed,
            cpuUs: target ? (cpuAfter - cpuBefore) / total : NaN,
            p50: percentile(sorted, 50),
            p90: percentile(sorted, 90),
            p99: percentile(sorted, 99),
            sent: sum('.stream_msgs_sent') / total,
            received: sum('.stream_msgs_received') / total,
            streams: sum('.streams_started') / total,
          };
          rows.set(`${title}|${kind}`, [...(rows.get(`${title}|${kind}`) ?? []), row]);
          note(`round ${round + 1} ${title} ${kind}: p50 ${ms(row.p50)} ms, CPU ${row.cpuUs.toFixed(0)} µs/exchange, ${row.sent.toFixed(2)} msgs sent/exchange, failed ${row.failed}`);
        }
      }
    }
    const after = loadavg();
    const mean = (list: Row[], pick: (row: Row) => number) => list.reduce((total, row) => total + pick(row), 0) / list.length;
    const table = ['| variant | body | exchanges | failed | backend CPU / exchange | per SSE chunk | ext_proc streams / exchange | messages sent / received per exchange | p50 / p90 / p99 ms (client, concurrency ' + CONCURRENCY + ') |', '|---|---|---:|---:|---:|---:|---:|---:|---|'];
    for (const [key, list] of rows) {
      const [title, kind] = key.split('|');
      const cpu = mean(list, (row) => row.cpuUs);
      table.push(`| ${title} | ${kind === 'json' ? 'JSON' : `SSE, ${SSE_CHUNKS} chunks 2 ms apart`} | ${list.reduce((total, row) => total + row.exchanges, 0)} | ${list.reduce((total, row) => total + row.failed, 0)} | ${Number.isNaN(cpu) ? '–' : `${cpu.toFixed(0)} µs`} | ${kind === 'sse' && !Number.isNaN(cpu) ? `${(cpu / SSE_CHUNKS).toFixed(1)} µs` : '–'} | ${mean(list, (row) => row.streams).toFixed(2)} | ${mean(list, (row) => row.sent).toFixed(2)} / ${mean(list, (row) => row.received).toFixed(2)} | ${ms(mean(list, (row) => row.p50))} / ${ms(mean(list, (row) => row.p90))} / ${ms(mean(list, (row) => row.p99))} |`);
    }
    out.push(`### AI exchange through Envoy ext_proc (envoy/ai-exchange, bench/ai-exchange.ts)\n`);
    out.push(`${startedAt.toISOString()} · ${cpus().length} × ${cpus()[0]?.model ?? '?'} · Node ${process.version} · load average ${before.map((value) => value.toFixed(2)).join(' / ')} before, ${after.map((value) => value.toFixed(2)).join(' / ')} after · ${ROUNDS} interleaved rounds (means) · ${REQUESTS} JSON exchanges and ${STREAMS} streams per round, ${CONCURRENCY} in flight\n`);
    out.push(table.join('\n'));
    out.push(`\n### Timeline of one exchange (service side, LOG_LEVEL=trace)\n`);
    out.push(timelines.join('\n\n'));
  } finally {
    await fixtures.stopAll();
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '2000' },
      streams: { type: 'string', default: '40' },
      concurrency: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const markdown = await runAiExchange({ requests: Number(values.requests), streams: Number(values.streams), concurrency: Number(values.concurrency), rounds: Number(values.rounds), note: (message) => process.stderr.write(`· ${message}\n`) });
  process.stdout.write(markdown);
}
