import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** One load run, from either tool, in one shape. Latencies in microseconds. */
export interface LoadResult {
  readonly tool: 'h2load' | 'genops-loadgen';
  readonly mode: 'closed' | 'open';
  /** Open loop: the fixed schedule, requests per second. */
  readonly targetRps?: number;
  /** Closed loop: requests in flight, e.g. "4×16" (connections × streams). */
  readonly inFlight?: string;
  readonly durationS: number;
  readonly requests: number;
  readonly ok: number;
  readonly denied: number;
  readonly failed: number;
  readonly details?: Record<string, number>;
  readonly throughputRps: number;
  readonly latencyUs: Readonly<Record<'mean' | 'p50' | 'p90' | 'p99' | 'p999' | 'max', number>>;
  /** Open loop: how late the generator itself sent requests against the schedule (included in latencyUs). */
  readonly sendLagUs?: Readonly<Record<'p50' | 'p99' | 'max', number>>;
  /** [percentile, µs] pairs for the chart. */
  readonly curve: readonly (readonly [number, number])[];
}

export type ProgressCallback = (done: number, failed: number) => void;

interface ToolOutput {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a load tool to completion; stderr/stdout lines go to `onLine` as they come. */
function runTool(command: string, args: readonly string[], onLine: (line: string, stream: 'stdout' | 'stderr') => void): Promise<ToolOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout += `${line}\n`;
      onLine(line, 'stdout');
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderr = `${stderr}${line}\n`.slice(-16_384);
      onLine(line, 'stderr');
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const CURVE_POINTS = [0, 10, 25, 50, 75, 90, 95, 97, 99, 99.5, 99.7, 99.9, 99.95, 99.99, 100];

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface H2loadOptions {
  readonly url: string;
  readonly connections: number;
  readonly streams: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Request body file: sent as POST. */
  readonly bodyFile?: string;
  readonly headers?: readonly string[];
  readonly logFile: string;
}

/**
 * h2load closed loop: `connections` × `streams` requests in flight for
 * `durationS` after `warmupS`. Percentiles come from its per-request log.
 * For gRPC, h2load sees HTTP 200 whatever the grpc-status; the caller
 * checks the service's own counters for the decisions.
 */
export async function runH2load(options: H2loadOptions): Promise<LoadResult> {
  const args = [
    '-c', String(options.connections),
    '-m', String(options.streams),
    '-t', '1',
    '-D', String(options.durationS),
    `--warm-up-time=${options.warmupS}`,
    `--log-file=${options.logFile}`,
    ...(options.bodyFile ? ['-d', options.bodyFile] : []),
    ...(options.headers ?? []).flatMap((header) => ['-H', header]),
    options.url,
  ];
  rmSync(options.logFile, { force: true });
  // h2load reports nothing until it ends: the display shows the time bar only.
  const output = await runTool('h2load', args, () => undefined);
  const text = output.stdout;
  const finished = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(text);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  if (output.code !== 0 || !finished || !requests || !codes) {
    throw new Error(`h2load ${args.join(' ')} failed (exit ${output.code}):\n${text}\n${output.stderr}`);
  }
  const lines = readFileSync(options.logFile, 'utf8').split('\n');
  const elapsed = new Float64Array(lines.length);
  let count = 0;
  for (const line of lines) {
    const tab = line.lastIndexOf('\t');
    if (tab > 0) elapsed[count++] = Number(line.slice(tab + 1));
  }
  const sorted = elapsed.subarray(0, count).sort();
  let total = 0;
  for (const value of sorted) total += value;
  rmSync(options.logFile, { force: true });
  const failed = Number(requests[5]) + Number(requests[6]) + Number(requests[7]);
  const denied = Number(codes[3]);
  return {
    tool: 'h2load',
    mode: 'closed',
    inFlight: `${options.connections}×${options.streams}`,
    durationS: options.durationS,
    requests: Number(requests[4]) + failed,
    ok: Number(codes[1]),
    denied,
    failed: failed + Number(codes[4]),
    throughputRps: Number(finished[2]),
    latencyUs: {
      mean: round1(count ? total / count : 0),
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: count ? sorted[count - 1]! : 0,
    },
    curve: CURVE_POINTS.map((p) => [p, percentile(sorted, Math.max(p, 1e-9))] as const),
  };
}

export interface LoadgenOptions {
  readonly binary: string;
  /** "grpc" or "http" and their flags (see bench/loadgen/main.go). */
  readonly args: readonly string[];
  readonly onProgress?: ProgressCallback;
}

interface LoadgenReport {
  mode: 'open' | 'closed';
  target_rps?: number;
  concurrency?: number;
  duration_s: number;
  requests: number;
  ok: number;
  denied: number;
  failed: number;
  details?: Record<string, number>;
  throughput_rps: number;
  latency_us: Record<'mean' | 'p50' | 'p90' | 'p99' | 'p999' | 'max', number>;
  send_lag_us?: Record<'p50' | 'p99' | 'max', number>;
  percentile_curve: [number, number][];
}

/** Runs bench/loadgen (open or closed loop) and reads its JSON report. */
export async function runLoadgen(options: LoadgenOptions): Promise<LoadResult> {
  const output = await runTool(options.binary, options.args, (line, stream) => {
    if (stream !== 'stderr' || !options.onProgress) return;
    const progress = /^progress done=(\d+) failed=(\d+)/.exec(line);
    if (progress) options.onProgress(Number(progress[1]), Number(progress[2]));
  });
  const last = output.stdout.trim().split('\n').pop() ?? '';
  if (output.code !== 0 || !last.startsWith('{')) {
    throw new Error(`genops-loadgen ${options.args.join(' ')} failed (exit ${output.code}):\n${output.stderr}`);
  }
  const report = JSON.parse(last) as LoadgenReport;
  return {
    tool: 'genops-loadgen',
    mode: report.mode,
    ...(report.target_rps ? { targetRps: report.target_rps } : {}),
    ...(report.concurrency ? { inFlight: String(report.concurrency) } : {}),
    durationS: report.duration_s,
    requests: report.requests,
    ok: report.ok,
    denied: report.denied,
    failed: report.failed,
    ...(report.details && Object.keys(report.details).length > 0 ? { details: report.details } : {}),
    throughputRps: round1(report.throughput_rps),
    latencyUs: report.latency_us,
    ...(report.send_lag_us ? { sendLagUs: report.send_lag_us } : {}),
    curve: report.percentile_curve,
  };
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
