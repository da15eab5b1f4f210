/**
 * CPU per AI exchange outside the transport: the ext_proc session factory wired as src/main.ts
 * wires it (governor with the memory rate-limit store and budget ledger, decision reporter, usage
 * settlement and reporter, metrics, pino at `info` to /dev/null, tracing off or on) driven
 * in-process with ProcessingRequests as Envoy sends them — protobuf bytes decoded by the service's
 * own decoder, replies encoded by its own encoder — for:
 *   - json: a buffered chat completion (request headers, body, response headers, JSON body);
 *   - sse:  the same request streamed back as --chunks SSE chunks (usage in the last event);
 * with a budget in force. No grpc-js, no sockets: what is left is the service's own work per
 * exchange. Reports CPU µs (process.cpuUsage) per exchange and per streamed chunk.
 *
 *   npx node --experimental-transform-types --import ./bench/register-ts.mjs bench/exchange-cpu.ts [--exchanges 20000] [--chunks 500] [--tracing off|on|both] [--rounds 3]
 *   add --cpu-prof before --import to profile; node bench/cpu-profile-top.mjs <file>.cpuprofile reads it.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { createDecisionReporter } from '../src/envoy/decision-reporter.js';
import { createBudgetTracker } from '../src/envoy/budget-tracker.js';
import { createExchangeSettlement } from '../src/envoy/exchange-settlement.js';
import type { ProcessingRequest } from '../src/envoy/envoy-messages.js';
import { createExtProcSessionFactory } from '../src/envoy/ext-proc-session.js';
import { encodeProcessingResponse } from '../src/envoy/response-encoding.js';
import { createUsageReporter } from '../src/envoy/usage-reporter.js';
import { createBudgeter } from '../src/governance/budgeting.js';
import { createDecisionEngine } from '../src/governance/decision-engine.js';
import { createGovernor } from '../src/governance/governor.js';
import { createRateLimiter } from '../src/governance/rate-limiting.js';
import { createUsageAccounting } from '../src/governance/usage-accounting.js';
import { createMemoryBudgetLedger } from '../src/limits/memory-budget-ledger.js';
import { createMemoryRateLimitStore } from '../src/limits/memory-rate-limit-store.js';
import { loadPolicyText } from '../src/policy/policy-store.js';
import { loadRequestDecoders } from '../src/server/proto-definitions.js';
import { aiExchangeWire } from './lib/ai-exchange-wire.js';
import { createCounterChildren } from '../src/telemetry/labelled-children.js';
import { createLogger } from '../src/telemetry/logger.js';
import { createMetrics } from '../src/telemetry/metrics.js';
import { createTracing, type Tracing } from '../src/telemetry/tracer.js';

const { values } = parseArgs({
  options: {
    exchanges: { type: 'string', default: '20000' },
    chunks: { type: 'string', default: '500' },
    tracing: { type: 'string', default: 'both' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string', default: 'json,sse' },
  },
});
const EXCHANGES = Number(values.exchanges);
const CHUNKS = Number(values.chunks);
const ROUNDS = Number(values.rounds);
const TRACING_MODES = values.tracing === 'both' ? [false, true] : [values.tracing === 'on'];
const KINDS = values.only.split(',');

const POLICY = loadPolicyText(
  readFileSync(new URL('./policy.yaml', import.meta.url), 'utf8').replace(
    '  rateLimits:',
    '  budgets:\n    - { name: bench-team, key: [team], amount: "9000000", period: monthly, timeZone: UTC }\n  rateLimits:',
  ),
  'bench-policy.yaml',
);

const WIRE = aiExchangeWire(CHUNKS);
const SSE_PIECES = WIRE.sse.body;

// ---- the service, wired as main.ts wires it ------------------------------------------------------

/** Serializes each batch as the OTLP exporter would (protobuf) and drops the bytes: span cost without a collector. */
class SerializingExporter implements SpanExporter {
  spans = 0;
  bytes = 0;
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const bytes = ProtobufTraceSerializer.serializeRequest(spans);
    this.spans += spans.length;
    this.bytes += bytes?.length ?? 0;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function wire(tracingOn: boolean) {
  const logger = createLogger({ level: 'info', destination: process.env.BENCH_LOG ?? '/dev/null' });
  const metrics = createMetrics({ customerLabel: false, defaultMetrics: false });
  const exporter = new SerializingExporter();
  const tracing: Tracing | undefined = tracingOn
    ? createTracing({ endpoint: 'http://127.0.0.1:1', sampler: 'parentbased_always_on', samplerArg: 1, scheduledDelayMillis: 5_000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512, metrics, logger, exporter })
    : undefined;
  const now = () => performance.now();
  const clock = () => Date.now();
  const policy = () => POLICY;
  const engine = createDecisionEngine({ policy });
  const reporter = createDecisionReporter({ metrics, logger, now, tracing });
  const countLimitCheck = createCounterChildren(metrics.rateLimitChecks);
  const rateLimiter = createRateLimiter({ store: createMemoryRateLimitStore({ clock, maxBuckets: 100_000 }), policy, observer: { limitChecked: (limit, outcome) => countLimitCheck({ limit, outcome }), backendFailed: () => undefined } });
  const ledger = createMemoryBudgetLedger({ clock });
  const budgetTracker = createBudgetTracker({ metrics, logger, ledger, policy, clock });
  const budgeter = createBudgeter({ ledger, policy, clock, observer: budgetTracker });
  const governor = createGovernor({ engine, rateLimiter, budgeter });
  const settle = createExchangeSettlement({ budgeter, accounting: createUsageAccounting({ policy }), reporter: createUsageReporter({ metrics, logger, tracing }), rateLimiter, now });
  const factory = createExtProcSessionFactory({ governor, reporter, policy, now, settle });
  return { factory, metrics, exporter, tracing, logger };
}

// ---- the run --------------------------------------------------------------------------------------

const decoders = loadRequestDecoders();
const yieldLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function runExchange(service: ReturnType<typeof wire>, kind: 'json' | 'sse', chunkCpu: { us: number }): Promise<number> {
  const messages = WIRE[kind];
  const session = service.factory.open();
  let answered = 0;
  const step = async (bytes: Buffer) => {
    const reply = await session.handle(decoders.processingRequest(bytes) as ProcessingRequest);
    if (reply) answered += encodeProcessingResponse(reply).length;
  };
  await step(messages.requestHeaders);
  await step(messages.requestBody);
  await step(messages.responseHeaders);
  if (kind === 'sse') {
    const before = process.cpuUsage();
    for (const chunk of messages.body) await step(chunk);
    const used = process.cpuUsage(before);
    chunkCpu.us += used.user + used.system;
  } else for (const chunk of messages.body) await step(chunk);
  session.close();
  return answered;
}

interface Figure { kind: string; tracing: boolean; exchangeUs: number; chunkUs?: number; spans: number; dropped: number }

async function measure(kind: 'json' | 'sse', tracingOn: boolean): Promise<Figure> {
  const service = wire(tracingOn);
  const count = kind === 'sse' ? Math.max(50, Math.round(EXCHANGES / 50)) : EXCHANGES;
  const warm = { us: 0 };
  for (let i = 0; i < Math.min(2_000, count); i++) {
    await runExchange(service, kind, warm);
    if (i % 16 === 15) await yieldLoop();
  }
  await service.tracing?.forceFlush();
  await yieldLoop();
  const spansBefore = service.exporter.spans;
  const chunkCpu = { us: 0 };
  const started = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    await runExchange(service, kind, chunkCpu);
    if (i % 16 === 15) await yieldLoop();
  }
  await service.tracing?.forceFlush();
  await yieldLoop();
  const used = process.cpuUsage(started);
  const total = used.user + used.system;
  const dropped = (await service.metrics.spansDropped.get()).values.reduce((sum, value) => sum + value.value, 0);
  await service.tracing?.shutdown(1_000);
  service.logger.flush();
  return {
    kind,
    tracing: tracingOn,
    exchangeUs: kind === 'sse' ? (total - chunkCpu.us) / count : total / count,
    chunkUs: kind === 'sse' ? chunkCpu.us / count / SSE_PIECES.length : undefined,
    spans: service.exporter.spans - spansBefore,
    dropped,
  };
}

const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;

async function main(): Promise<void> {
  console.log(`load average before: ${loadavg().map((value) => value.toFixed(2)).join(' ')}; node ${process.version}; ${EXCHANGES} JSON exchanges, ${Math.max(50, Math.round(EXCHANGES / 50))} SSE exchanges of ${SSE_PIECES.length} chunks, ${ROUNDS} rounds`);
  const rows: string[] = [];
  for (const tracingOn of TRACING_MODES) {
    for (const kind of KINDS as ('json' | 'sse')[]) {
      const figures: Figure[] = [];
      for (let round = 0; round < ROUNDS; round++) figures.push(await measure(kind, tracingOn));
      const exchange = figures.map((figure) => figure.exchangeUs);
      const chunk = figures.map((figure) => figure.chunkUs ?? 0);
      rows.push(`| ${kind} | ${tracingOn ? 'on' : 'off'} | ${median(exchange).toFixed(1)} (${exchange.map((value) => value.toFixed(0)).join(', ')}) | ${kind === 'sse' ? `${median(chunk).toFixed(2)} (${chunk.map((value) => value.toFixed(1)).join(', ')})` : '–'} | ${figures.map((figure) => `${figure.spans}/${figure.dropped}`).join(', ')} |`);
      console.log(rows.at(-1));
    }
  }
  console.log('\n| exchange | tracing | CPU µs per exchange, median (rounds) | CPU µs per SSE chunk | spans exported/dropped |\n|---|---|---:|---:|---|');
  for (const row of rows) console.log(row);
  console.log(`load average after: ${loadavg().map((value) => value.toFixed(2)).join(' ')}; rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
}

await main();
