/**
 * Where the service's memory goes under AI-exchange load: dist/main.js (the bench policy with a
 * budget, LOG_LEVEL info) driven through grpc-js with ext_proc streams as Envoy sends them
 * (bench/lib/ai-exchange-wire.ts: JSON exchanges, and every --sse-every'th one a --chunks-chunk
 * SSE stream) at --rate exchanges a second, open loop, for --seconds. Reports the peak and final
 * RSS (/proc) and, from the service's /metrics, V8's heap (total, used), external memory and the
 * service's CPU per exchange — once per variant (--variants, `;`-separated, each a space-separated list of node flags and
 * NAME=value environment entries; `-` for none beyond the shipped SERVICE_NODE_FLAGS).
 *
 *   npm run build && npx node --experimental-transform-types --import ./bench/register-ts.mjs bench/exchange-rss.ts [--rate 1000] [--seconds 20] [--variants="-;--max-semi-space-size=1"]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { startService } from '../src/demo/start-service.js';
import { aiExchangeWire, type ExchangeWire } from './lib/ai-exchange-wire.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    chunks: { type: 'string', default: '500' },
    'sse-every': { type: 'string', default: '50' },
    variants: { type: 'string', default: '-' },
    tracing: { type: 'boolean', default: false },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const SSE_EVERY = Number(values['sse-every']);
const WIRE = aiExchangeWire(Number(values.chunks));

const policyText = readFileSync(new URL('./policy.yaml', import.meta.url), 'utf8').replace(
  '  rateLimits:',
  '  budgets:\n    - { name: bench-team, key: [team], amount: "9000000", period: monthly, timeZone: UTC }\n  rateLimits:',
);
const policyPath = join(tmpdir(), `genops-rss-policy-${process.pid}.yaml`);
writeFileSync(policyPath, policyText);

const PROCESS = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
const identity = (buffer: Buffer) => buffer;

/** One exchange on its own stream: each message written when the previous one is answered, as Envoy does. */
function exchange(client: grpc.Client, wire: ExchangeWire): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(PROCESS, identity, identity, new grpc.Metadata(), { deadline: Date.now() + 30_000 });
    const messages = [wire.requestHeaders, wire.requestBody, wire.responseHeaders, ...wire.body];
    let next = 0;
    call.on('data', () => {
      if (next < messages.length) call.write(messages[next++]!);
      else call.end();
    });
    call.on('error', reject);
    call.on('end', resolve);
    call.on('status', (status: grpc.StatusObject) => (status.code === grpc.status.OK ? resolve() : reject(new Error(status.details))));
    call.write(messages[next++]!);
  });
}

function rssOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

async function metric(adminUrl: string, names: readonly string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const found: Record<string, number> = {};
  for (const name of names) {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `) || candidate.startsWith(`${name}{`));
    if (line) found[name] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return found;
}

/** `variant`: node flags, and NAME=value environment entries (e.g. MALLOC_ARENA_MAX=2). */
async function run(variant: readonly string[]): Promise<string> {
  const flags = variant.filter((token) => token.startsWith('-'));
  const extraEnv = Object.fromEntries(variant.filter((token) => !token.startsWith('-')).map((token) => [token.slice(0, token.indexOf('=')), token.slice(token.indexOf('=') + 1)]));
  const service = await startService({ nodeFlags: flags, env: { LOG_LEVEL: 'info', GENOPS_POLICY: policyPath, ...(values.tracing ? {} : { OTEL_SDK_DISABLED: 'true' }), ...extraEnv } });
  try {
    const pid = service.process.pid!;
    const client = new grpc.Client(`${service.host}:${service.grpcPort}`, grpc.credentials.createInsecure());
    const idleRss = rssOf(pid);
    const cpuBefore = await metric(service.adminUrl, ['process_cpu_seconds_total']);
    let started = 0;
    let failed = 0;
    let done = 0;
    let peak = 0;
    const inFlight = new Set<Promise<void>>();
    const begin = Date.now();
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 500);
    while (Date.now() - begin < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - begin) / 1000) * RATE);
      while (started < due) {
        const wire = SSE_EVERY > 0 && started % SSE_EVERY === SSE_EVERY - 1 ? WIRE.sse : WIRE.json;
        started++;
        const promise: Promise<void> = exchange(client, wire).then(() => void done++, () => void failed++).finally(() => inFlight.delete(promise));
        inFlight.add(promise);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(inFlight);
    clearInterval(sampler);
    const after = await metric(service.adminUrl, ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes']);
    client.close();
    if (flags.some((flag) => flag.startsWith('--heapsnapshot-signal'))) {
      // The snapshot (written to the service's working directory) is taken after a full GC: live objects only.
      process.kill(pid, 'SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 8_000));
    }
    const cpuUs = ((after.process_cpu_seconds_total! - cpuBefore.process_cpu_seconds_total!) * 1e6) / Math.max(1, done);
    const mb = (bytes: number | undefined) => ((bytes ?? 0) / 1e6).toFixed(0);
    return `| ${variant.join(' ') || '(shipped)'} | ${done} (${failed} failed) | ${mb(idleRss)} | ${mb(Math.max(peak, after.process_resident_memory_bytes ?? 0))} | ${mb(after.process_resident_memory_bytes)} | ${mb(after.nodejs_heap_size_total_bytes)} / ${mb(after.nodejs_heap_size_used_bytes)} | ${mb(after.nodejs_external_memory_bytes)} | ${cpuUs.toFixed(0)} |`;
  } finally {
    await service.stop();
  }
}

console.log(`load average before: ${loadavg().map((value) => value.toFixed(2)).join(' ')}; ${RATE}/s for ${SECONDS} s, every ${SSE_EVERY}th exchange an SSE stream of ${WIRE.sse.body.length} chunks`);
console.log('| node flags / environment (after the shipped SERVICE_NODE_FLAGS) | exchanges | idle RSS MB | peak RSS MB | final RSS MB | heap total / used MB | external MB | service CPU µs per exchange |\n|---|---:|---:|---:|---:|---:|---:|---:|');
for (const variant of values.variants.split(';')) console.log(await run(variant.trim() === '-' ? [] : variant.trim().split(/\s+/)));
console.log(`load average after: ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
