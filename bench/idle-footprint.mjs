/**
 * Where the idle service's memory goes: imports the compiled modules of dist/ one group after
 * another, in the order dist/main.js needs them, and after each step (a full GC first) prints
 * RSS split into anonymous memory (heap, code, malloc) and file-backed pages (the node binary's
 * code and data touched so far), V8's heap used and its code space, and external memory. Each
 * row is the cost of that step on top of the ones before it. The rows after the service's own
 * are what it loads only when configured (or never, for the policy parser). Last, the service
 * itself: dist/main.js started with the shipped flags, idle, tracing off.
 *
 *   npm run build && npx node --expose-gc bench/idle-footprint.mjs
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapSpaceStatistics } from 'node:v8';

const dist = (path) => new URL(`../dist/${path}`, import.meta.url).href;
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc');

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0) / 1024;
  return { rss: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile') };
}

function sample() {
  for (let i = 0; i < 3; i++) gc();
  const usage = process.memoryUsage();
  const code = getHeapSpaceStatistics().filter((space) => space.space_name.includes('code')).reduce((sum, space) => sum + space.space_used_size, 0);
  return { ...status('self'), heap: usage.heapUsed / 2 ** 20, code: code / 2 ** 20, external: usage.external / 2 ** 20 };
}

const imports = (...paths) => () => Promise.all(paths.map((path) => import(path.startsWith('node:') ? path : dist(path))));
const steps = [
  ['node builtins (http2, net, tls, cluster, crypto, zlib, http)', imports('node:http2', 'node:net', 'node:tls', 'node:cluster', 'node:crypto', 'node:zlib', 'node:http')],
  ['@grpc/grpc-js', () => import('@grpc/grpc-js')],
  ['Envoy protos: one protobufjs tree (service definitions and request decoders)', async () => {
    const { loadServiceDefinitions, loadRequestDecoders } = await import(dist('server/proto-definitions.js'));
    return [loadServiceDefinitions(), loadRequestDecoders()];
  }],
  ['pino (logger)', async () => (await import(dist('telemetry/logger.js'))).createLogger({ level: 'info' })],
  ['prom-client (metrics)', async () => (await import(dist('telemetry/metrics.js'))).createMetrics({ customerLabel: 'team' })],
  ['compiled policy and its matchers (no zod, no yaml)', imports('policy/compiled-policy.js', 'policy/policy-watcher.js', 'policy/isolated-policy-loader.js')],
  ['@opentelemetry/api (trace context of every request, tracing off too)', imports('telemetry/trace-context.js')],
  ['governance, usage and envoy adapters', imports('envoy/ext-proc-session.js', 'envoy/authz-adapter.js', 'envoy/decision-reporter.js', 'envoy/usage-reporter.js', 'envoy/exchange-settlement.js', 'governance/governor.js', 'usage/response-usage.js')],
  ['admin and forward-auth servers, workers, settings', imports('server/admin-server.js', 'server/forward-auth-server.js', 'server/worker-primary.js', 'settings/settings.js')],
  ['— only when configured: OpenTelemetry SDK + OTLP exporter (tracing on)', imports('telemetry/tracer.js')],
  ['— only when configured: ioredis (GENOPS_REDIS_URL)', imports('limits/redis-connection.js')],
  ['— only at the first Bedrock stream: @smithy event-stream codec', () => import('@smithy/core/event-streams')],
  ['— only at the first non-UTC budget: Intl.DateTimeFormat (ICU time-zone data)', async () => new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Berlin', hour: 'numeric' }).formatToParts(0)],
  ['— never in the service (its policy parser child): zod + yaml, the default policy parsed', async () => {
    const { loadPolicyFile } = await import(dist('policy/policy-store.js'));
    const { DEFAULT_POLICY_PATH } = await import(dist('policy/default-policy.js'));
    return loadPolicyFile(DEFAULT_POLICY_PATH);
  }],
];

const keep = [];
let before = sample();
const format = (value) => value.toFixed(1).padStart(6);
console.log('| step | RSS MB (+) | anon (+) | file-backed (+) | V8 heap used (+) | of it code (+) | external (+) |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
console.log(`| bare node | ${format(before.rss)} | ${format(before.anon)} | ${format(before.file)} | ${format(before.heap)} | ${format(before.code)} | ${format(before.external)} |`);
for (const [name, step] of steps) {
  keep.push(await step());
  const after = sample();
  const delta = (key) => `+${(after[key] - before[key]).toFixed(1)}`;
  console.log(`| ${name} | ${format(after.rss)} (${delta('rss')}) | ${delta('anon')} | ${delta('file')} | ${delta('heap')} | ${delta('code')} | ${delta('external')} |`);
  before = after;
}

// The service as it ships, idle: the flags of src/server/service-node-flags.ts.
const { SERVICE_ENTRY } = await import(dist('demo/repo-root.js'));
const { SERVICE_NODE_FLAGS } = await import(dist('server/service-node-flags.js'));
const service = spawn(process.execPath, [...SERVICE_NODE_FLAGS, SERVICE_ENTRY], {
  env: { PATH: process.env.PATH, OTEL_SDK_DISABLED: 'true', GENOPS_GRPC_PORT: '0', GENOPS_ADMIN_PORT: '0', LOG_LEVEL: 'warn' },
  stdio: 'ignore',
});
await sleep(5_000);
const idle = status(service.pid);
service.kill('SIGTERM');
console.log(`\ndist/main.js as shipped (${SERVICE_NODE_FLAGS.join(' ')}), idle 5 s, tracing off: RSS ${idle.rss.toFixed(1)} MB (anon ${idle.anon.toFixed(1)}, file-backed ${idle.file.toFixed(1)})`);
