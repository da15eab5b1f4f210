/**
 * Where the idle service's memory goes: imports the compiled modules of dist/ one group after
 * another, in the order dist/main.js needs them, and after each step (a full GC first) prints
 * RSS split into anonymous memory (heap, code, malloc) and file-backed pages (the node binary's
 * code and data touched so far), V8's heap used and its code space, and external memory.
 * Each row is the cost of that step on top of the ones before it.
 *
 *   npm run build && npx node --expose-gc bench/idle-footprint.mjs [--tracing]
 */
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const tracing = process.argv.includes('--tracing');
const dist = (path) => new URL(`../dist/${path}`, import.meta.url).href;
const gc = globalThis.gc;
if (!gc) throw new Error('run with --expose-gc');

function sample() {
  for (let i = 0; i < 3; i++) gc();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  const usage = process.memoryUsage();
  const code = getHeapSpaceStatistics().filter((space) => space.space_name.includes('code')).reduce((sum, space) => sum + space.space_used_size, 0);
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), heap: usage.heapUsed / 2 ** 20, code: code / 2 ** 20, external: usage.external / 2 ** 20 };
}

const steps = [
  ['node builtins (http2, net, tls, cluster, crypto, zlib)', () => Promise.all(['node:http2', 'node:net', 'node:tls', 'node:cluster', 'node:crypto', 'node:zlib', 'node:http'].map((name) => import(name)))],
  ['@grpc/grpc-js', () => import('@grpc/grpc-js')],
  ['Envoy protos (service definitions and request decoders)', async () => {
    const { loadServiceDefinitions, loadRequestDecoders } = await import(dist('server/proto-definitions.js'));
    return [loadServiceDefinitions(), loadRequestDecoders()];
  }],
  ['pino (logger)', async () => (await import(dist('telemetry/logger.js'))).createLogger({ level: 'info' })],
  ['prom-client (metrics)', async () => (await import(dist('telemetry/metrics.js'))).createMetrics({ customerLabel: 'team' })],
  ['zod + yaml (policy schema, the default policy loaded)', async () => {
    const { loadPolicyFile } = await import(dist('policy/policy-store.js'));
    const { DEFAULT_POLICY_PATH } = await import(dist('policy/default-policy.js'));
    return loadPolicyFile(DEFAULT_POLICY_PATH);
  }],
  ['governance, usage and envoy adapters', () => Promise.all(['envoy/ext-proc-session.js', 'envoy/authz-adapter.js', 'envoy/decision-reporter.js', 'envoy/usage-reporter.js', 'envoy/exchange-settlement.js', 'governance/governor.js', 'usage/response-usage.js'].map((path) => import(dist(path))))],
  ['admin and forward-auth servers, settings', () => Promise.all(['server/admin-server.js', 'server/forward-auth-server.js', 'server/worker-primary.js', 'settings/settings.js'].map((path) => import(dist(path))))],
  ...(tracing ? [['OpenTelemetry SDK + OTLP exporter (tracing on)', () => import(dist('telemetry/tracer.js'))]] : []),
  ['ioredis (only with GENOPS_REDIS_URL)', () => import(dist('limits/redis-connection.js'))],
  ['@smithy event-stream codec (only for a Bedrock stream)', () => import(dist('usage/event-stream-usage.js'))],
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
