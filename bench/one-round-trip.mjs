// One round trip against two, side by side: the same genops-mesh and upstream behind two real
// Envoys, one booted with deploy/envoy/ext-proc.yaml as shipped (its `undecided` route: headers and
// body pipelined, FULL_DUPLEX_STREAMED) and one with that route removed (the filter's own mode:
// request headers answered first, then the buffered body). Interleaved rounds of JSON AI requests,
// one at a time on a keep-alive connection; then `curl` medians. Prints medians, the service's CPU
// per request (from /proc) and Envoy's ext_proc message counters per request.
//
//   npm run build && npx node bench/one-round-trip.mjs [requests-per-round] [rounds]
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startEnvoy } from '../dist/demo/start-envoy.js';
import { startService } from '../dist/demo/start-service.js';
import { startStubLlm } from '../dist/demo/stub-llm.js';

const perRound = Number(process.argv[2] ?? 300);
const rounds = Number(process.argv[3] ?? 4);
const BODY = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Summarise the release notes in one line.' }] });
const HEADERS = { 'content-type': 'application/json', 'x-genops-team': 'ml-platform', 'x-genops-project': 'support-bot' };

const dir = mkdtempSync(join(tmpdir(), 'genops-one-rtt-'));
const shipped = readFileSync('deploy/envoy/ext-proc.yaml', 'utf8');
const template = shipped.replace(/\$\{([A-Z][A-Z0-9_]*)\}/g, '__PLACEHOLDER_$1__');
const config = parse(template);
const hosts = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts;
hosts[0].routes = hosts[0].routes.filter((route) => route.name !== 'undecided');
const twoTripsPath = join(dir, 'ext-proc-two-round-trips.yaml');
writeFileSync(twoTripsPath, stringify(config, { lineWidth: 0 }).replace(/__PLACEHOLDER_([A-Z][A-Z0-9_]*)__/g, '$${$1}'));

const load = () => loadavg().map((value) => value.toFixed(2)).join(' / ');
const loadBefore = load();
const upstream = await startStubLlm();
const service = await startService({ env: { GENOPS_RATE_LIMIT_MAX_BUCKETS: '100000' } });
const vars = { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort, UPSTREAM_PORT: upstream.port };
const variants = [
  { name: 'two round trips (headers reply, then body)', envoy: await startEnvoy({ config: twoTripsPath, vars }) },
  { name: 'one round trip (shipped: undecided route)', envoy: await startEnvoy({ config: 'deploy/envoy/ext-proc.yaml', vars }) },
];

function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime + stime, clock ticks of 10 ms
}

async function extProcCounters(envoy) {
  const text = await (await fetch(`${envoy.adminUrl}/stats?filter=ext_proc`)).text();
  const value = (name) => Number(new RegExp(`ext_proc\\.${name}: (\\d+)`).exec(text)?.[1] ?? 0);
  return { sent: value('stream_msgs_sent'), received: value('stream_msgs_received') };
}

function post(url, agent, customer) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const outgoing = request(`${url}/v1/chat/completions`, { method: 'POST', agent, headers: { ...HEADERS, 'x-genops-customer-id': customer, 'content-length': Buffer.byteLength(BODY) } }, (response) => {
      response.resume();
      response.on('end', () => (response.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`status ${response.statusCode}`))));
    });
    outgoing.on('error', reject);
    outgoing.end(BODY);
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const results = variants.map(() => ({ latencies: [], cpu: 0, requests: 0, sent: 0, received: 0, curl: [] }));
let customer = 0;
for (let round = 0; round < rounds; round++) {
  for (const [index, variant] of variants.entries()) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let warm = 0; warm < 20; warm++) await post(variant.envoy.url, agent, `cust-${customer++}`);
    const before = { cpu: cpuMicros(service.process.pid), counters: await extProcCounters(variant.envoy) };
    for (let sent = 0; sent < perRound; sent++) results[index].latencies.push(await post(variant.envoy.url, agent, `cust-${customer++}`));
    const after = { cpu: cpuMicros(service.process.pid), counters: await extProcCounters(variant.envoy) };
    results[index].cpu += after.cpu - before.cpu;
    results[index].requests += perRound;
    results[index].sent += after.counters.sent - before.counters.sent;
    results[index].received += after.counters.received - before.counters.received;
    agent.destroy();
  }
}
for (let round = 0; round < 50; round++) {
  for (const [index, variant] of variants.entries()) {
    // Asynchronously: the upstream runs in this process.
    const { stdout: seconds } = await promisify(execFile)('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{time_total}', '-X', 'POST', ...Object.entries({ ...HEADERS, 'x-genops-customer-id': `curl-${customer++}` }).flatMap(([key, value]) => ['-H', `${key}: ${value}`]), '--data-binary', BODY, `${variant.envoy.url}/v1/chat/completions`], { encoding: 'utf8', timeout: 10_000 });
    results[index].curl.push(Number(seconds) * 1000);
  }
}
console.log(`${new Date().toISOString()} · load average ${loadBefore} before, ${load()} after · ${rounds} interleaved rounds × ${perRound} JSON AI requests, one at a time (keep-alive), then 50 curl requests each`);
console.log('| variant | median ms (keep-alive) | p90 ms | median ms (curl, 50) | service CPU / request | ext_proc messages sent / received per request |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [index, variant] of variants.entries()) {
  const result = results[index];
  const sorted = [...result.latencies].sort((a, b) => a - b);
  console.log(`| ${variant.name} | ${median(result.latencies).toFixed(3)} | ${sorted[Math.floor(sorted.length * 0.9)].toFixed(3)} | ${median(result.curl).toFixed(3)} | ${Math.round(result.cpu / result.requests)} µs | ${(result.sent / result.requests).toFixed(2)} / ${(result.received / result.requests).toFixed(2)} |`);
}
for (const variant of variants) await variant.envoy.stop();
await service.stop();
await upstream.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
