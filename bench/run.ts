/**
 * genops-mesh bench harness (issue 5, DESIGN §5): `npm run bench [-- options]`.
 *
 * Starts the trivial grpc-js server, genops-mesh (tracing off, and on with a
 * local OTLP sink), a Go upstream and real Envoys, drives them with h2load
 * (closed loop) and bench/loadgen (open loop, coordinated omission
 * accounted for), and writes bench/results/<run>/report.{json,md,svg}.
 * Run with --help for the options.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findEnvoy } from '../src/demo/find-envoy.js';
import { REPO_ROOT } from '../src/demo/repo-root.js';
import { SERVICE_NODE_FLAGS } from '../src/server/service-node-flags.js';
import { startService } from '../src/demo/start-service.js';
import { renderLatencyChart } from './lib/chart.js';
import { ENVOY_VARIANTS, type EnvoyVariant } from './lib/envoy-configs.js';
import { identitySteps } from './lib/identity-scenarios.js';
import { workerSteps } from './lib/worker-scenarios.js';
import { Fixtures, type EnvoyBackend, type ServiceKind } from './lib/fixtures.js';
import { runH2load, runLoadgen, type LoadResult } from './lib/load-tools.js';
import { rssMb, sampleUsage } from './lib/process-stats.js';
import { createProgress } from './lib/progress.js';
import { evaluateTargets, mergeRounds, renderMarkdown, withAddedLatency, type BenchReport, type MemoryResult, type ScenarioResult, type Section } from './lib/report.js';
import { evaluatePeerTargets, renderPeerMarkdown } from './lib/peer-report.js';
import { peerVersions } from './lib/peer-processes.js';
import { buildPeerSteps } from './lib/peer-scenarios.js';
import { renderSoakMarkdown, runSoak } from './lib/soak-scenario.js';
import { delta, readCounters } from './lib/service-metrics.js';
import { readRuntime, runtimeWindow } from './lib/runtime-stats.js';
import type { Step, StepContext } from './lib/step.js';
import { runAiExchange } from './ai-exchange.js';

const HELP = `npm run bench [-- options]

  --duration <s>     measured seconds per scenario (default 10)
  --warmup <s>       unmeasured seconds before each, at the same load (default 2)
  --rounds <n>       interleaved rounds of the ratio and Envoy scenarios (default 2)
  --rates <list>     open-loop rates for direct gRPC, req/s (default 1000,5000)
  --envoy-rate <n>   open-loop rate through Envoy, req/s (default 1000)
  --keys <n>         distinct customer ids for the memory scenario (default 1000000)
  --scenario <list>  only scenarios whose id starts with one of these, e.g.
                     direct,envoy/ext-authz,traced,memory (default: all; --list shows ids)
  --workers <list>   GENOPS_WORKERS values the workers/ scenarios compare, on Redis
                     (default 1,2; e.g. --scenario workers/ --workers 1,2)
  --node-options <s> NODE_OPTIONS for genops-mesh on top of the flags it ships with,
                     e.g. "--max-old-space-size=128" (default none)
  --out <dir>        results directory (default bench/results)
  --update-results   also rewrite the generated part of bench/RESULTS.md
  --list             print the scenario ids and exit

  --scenario soak    on its own (never part of the default run): a steady rate through
                     Envoy to two replicas with budgets and limits on a Redis Cluster, for
                     20 min unless --duration says otherwise; RSS, errors, exact money
  --soak-rate <n>    the soak's rate, req/s (default 50)
`;

interface Options {
  durationS: number;
  warmupS: number;
  rounds: number;
  rates: number[];
  envoyRate: number;
  keys: number;
  scenarios: string[];
  nodeOptions: string;
  workers: number[];
  out: string;
  updateResults: boolean;
  list: boolean;
  /** --duration as given (the soak's default is 20 minutes, not the scenarios' 10 s). */
  durationGiven: boolean;
  soakRate: number;
}

/** `--node-options "--flag"`: parseArgs refuses a value that starts with a dash unless it is joined by "=". */
function joinNodeOptionsValue(argv: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--node-options' && i + 1 < argv.length) joined.push(`--node-options=${argv[++i]}`);
    else joined.push(argv[i]!);
  }
  return joined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: joinNodeOptionsValue(argv),
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      rates: { type: 'string' },
      'envoy-rate': { type: 'string' },
      keys: { type: 'string' },
      scenario: { type: 'string' },
      'node-options': { type: 'string' },
      workers: { type: 'string' },
      out: { type: 'string' },
      'update-results': { type: 'boolean' },
      list: { type: 'boolean' },
      'soak-rate': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const positive = (name: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw.replace(/s$/, ''));
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}=${raw}: must be a positive number`);
    return value;
  };
  return {
    durationS: positive('duration', values.duration, 10),
    warmupS: values.warmup === '0' ? 0 : positive('warmup', values.warmup, 2),
    rounds: Math.round(positive('rounds', values.rounds, 2)),
    rates: (values.rates ?? '1000,5000').split(',').map((rate) => positive('rates', rate, 1000)),
    envoyRate: positive('envoy-rate', values['envoy-rate'], 1000),
    keys: Math.round(positive('keys', values.keys, 1_000_000)),
    scenarios: values.scenario ? values.scenario.split(',').map((part) => part.trim()).filter(Boolean) : [],
    nodeOptions: values['node-options'] ?? '',
    workers: (values.workers ?? '1,2').split(',').map((count) => Math.round(positive('workers', count, 1))),
    out: values.out ?? join(REPO_ROOT, 'bench/results'),
    updateResults: values['update-results'] ?? false,
    list: values.list ?? false,
    durationGiven: values.duration !== undefined,
    soakRate: positive('soak-rate', values['soak-rate'], 50),
  };
}

const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
/** The HTTP request sent through Envoy by h2load: the headers bench/loadgen sends too. */
const HTTP_HEADERS = [
  'content-type: application/json',
  'x-genops-team: ml-platform',
  'x-genops-customer-id: cust-0000001',
  'x-genops-project: support-chatbot',
  'x-genops-customer-tier: premium',
  'x-genops-model: claude-opus',
  'x-genops-environment: production',
  'x-genops-cost-center: cc-4711',
  'x-genops-feature: chat',
  'traceparent: 00-6e6f7073000000000000000000000001-0000000000000001-01',
];

interface Paths {
  readonly loadgen: string;
  readonly checkBody: string;
  readonly processBody: string;
  readonly httpBody: string;
  readonly work: string;
}

function buildSteps(options: Options, paths: Paths): Step[][] {
  const measured = options.durationS + options.warmupS + 1;
  const h2load = (url: string, bodyFile: string, headers: readonly string[], _context: StepContext) =>
    runH2load({ url, connections: 4, streams: 16, durationS: options.durationS, warmupS: options.warmupS, bodyFile, headers, logFile: join(paths.work, 'h2load.log') });
  const loadgen = (args: string[], context: StepContext) =>
    runLoadgen({ binary: paths.loadgen, args: [...args, '-duration', `${options.durationS}s`, '-warmup', `${options.warmupS}s`], onProgress: context.onProgress });

  /** Measures `load` against a process: its CPU and RSS, and the service's counters when it is one. */
  const measure = async (
    step: Omit<ScenarioResult, 'load' | 'usage' | 'envoyUsage' | 'decisions' | 'spans'>,
    target: { pid: number; adminUrl?: string; envoyPid?: number },
    load: () => Promise<LoadResult>,
  ): Promise<ScenarioResult> => {
    const before = target.adminUrl ? await readCounters(target.adminUrl) : undefined;
    const runtimeBefore = target.adminUrl ? await readRuntime(target.adminUrl) : undefined;
    const startedAt = performance.now();
    const usage = sampleUsage(target.pid);
    const envoyUsage = target.envoyPid ? sampleUsage(target.envoyPid) : undefined;
    const result = await load();
    const sampled = { usage: usage.stop(), envoyUsage: envoyUsage?.stop() };
    const runtimeAfter = target.adminUrl ? await readRuntime(target.adminUrl) : undefined;
    const after = target.adminUrl ? await readCounters(target.adminUrl) : undefined;
    return {
      ...step,
      load: result,
      ...sampled,
      ...(runtimeBefore && runtimeAfter ? { runtime: runtimeWindow(runtimeBefore, runtimeAfter, (performance.now() - startedAt) / 1000) } : {}),
      ...(before && after ? { decisions: delta(after.decisions, before.decisions) } : {}),
      ...(before && after && after.spansExported + Object.values(after.spansDropped).reduce((a, b) => a + b, 0) > 0
        ? { spans: { exported: after.spansExported - before.spansExported, dropped: delta(after.spansDropped, before.spansDropped) } }
        : {}),
    };
  };

  const grpcTarget = async (context: StepContext, kind: ServiceKind | 'trivial', instance: string) => {
    if (kind === 'trivial') {
      const trivial = await context.fixtures.trivial(instance);
      return { port: trivial.port, pid: trivial.process.pid };
    }
    const service = await context.fixtures.service(kind, instance);
    return { port: service.grpcPort, pid: service.process.pid, adminUrl: service.adminUrl };
  };
  const serviceTitle = (kind: ServiceKind | 'trivial', what: string) =>
    kind === 'trivial' ? `trivial grpc-js server ${what}` : `genops-mesh ${what}${kind === 'traced' ? ', tracing on' : ''}`;

  const directClosed = (kind: ServiceKind | 'trivial', rpc: 'check' | 'process'): Step => ({
    id: `${kind === 'traced' ? 'traced' : 'direct'}/${kind === 'trivial' ? 'trivial' : 'service'}/${rpc}/closed`,
    section: 'direct-closed',
    title: serviceTitle(kind, rpc === 'check' ? 'Check' : 'Process (headers-only stream)'),
    expectedS: measured,
    prepare: (fixtures) => (kind === 'trivial' ? fixtures.trivial('closed-loop') : fixtures.service(kind, 'closed-loop')),
    async run(context) {
      const target = await grpcTarget(context, kind, 'closed-loop');
      return measure(
        { id: this.id, section: this.section, title: this.title },
        target,
        () => h2load(`http://127.0.0.1:${target.port}${rpc === 'check' ? CHECK_PATH : PROCESS_PATH}`, rpc === 'check' ? paths.checkBody : paths.processBody, GRPC_HEADERS, context),
      );
    },
  });

  const directOpen = (kind: ServiceKind | 'trivial', rpc: 'check' | 'process', rate: number): Step => ({
    id: `${kind === 'traced' ? 'traced' : 'direct'}/${kind === 'trivial' ? 'trivial' : 'service'}/${rpc}/open@${rate}`,
    section: 'direct-open',
    title: serviceTitle(kind, rpc === 'check' ? 'Check' : 'Process'),
    expectedS: measured,
    prepare: (fixtures) => (kind === 'trivial' ? fixtures.trivial('open-loop') : fixtures.service(kind, 'open-loop')),
    async run(context) {
      const target = await grpcTarget(context, kind, 'open-loop');
      return measure({ id: this.id, section: this.section, title: this.title }, target, () =>
        loadgen(['grpc', '-addr', `127.0.0.1:${target.port}`, '-kind', rpc, '-conns', '4', '-rate', String(rate), '-name', this.id], context),
      );
    },
  });

  const envoyId = (variant: EnvoyVariant, kind: EnvoyBackend) => `${variant}${ENVOY_VARIANTS[variant].usesService && kind !== 'plain' ? `+${kind}` : ''}`;
  const envoyTarget = async (context: StepContext, variant: EnvoyVariant, kind: EnvoyBackend) => {
    const envoy = await context.fixtures.envoy(variant, kind);
    if (!ENVOY_VARIANTS[variant].usesService) return { envoy, pid: envoy.process.pid, envoyPid: envoy.process.pid, adminUrl: undefined };
    if (kind === 'trivial' || kind === 'go' || kind === 'lean') {
      const server =
        kind === 'trivial' ? await context.fixtures.trivial('envoy')
        : kind === 'lean' ? await context.fixtures.lean()
        : variant.startsWith('ext-proc') ? await context.fixtures.goExtProc()
        : await context.fixtures.goBackend();
      return { envoy, pid: server.process.pid, envoyPid: envoy.process.pid, adminUrl: undefined };
    }
    const service = await context.fixtures.service(kind, 'envoy');
    return { envoy, pid: service.process.pid, envoyPid: envoy.process.pid, adminUrl: service.adminUrl };
  };
  const envoyTitle = (variant: EnvoyVariant, kind: EnvoyBackend) => {
    const { title, usesService } = ENVOY_VARIANTS[variant];
    if (!usesService || kind === 'plain') return title;
    if (kind === 'traced') return `${title}, tracing on`;
    return title.replace('(genops-mesh)', kind === 'trivial' ? '→ trivial grpc-js server' : kind === 'lean' ? '→ fixed replies on node:http2 alone' : '→ fixed-reply Go gRPC server');
  };

  const envoyOpen = (variant: EnvoyVariant, kind: EnvoyBackend): Step => ({
    id: `envoy/${envoyId(variant, kind)}/open@${options.envoyRate}`,
    section: 'envoy-open',
    title: envoyTitle(variant, kind),
    expectedS: measured,
    prepare: (fixtures) => fixtures.envoy(variant, kind),
    async run(context) {
      const { envoy, ...target } = await envoyTarget(context, variant, kind);
      const result = await measure(
        { id: this.id, section: this.section, title: this.title, ...(variant === 'envoy-alone' ? {} : { baselineId: `envoy/envoy-alone/open@${options.envoyRate}` }) },
        ENVOY_VARIANTS[variant].usesService ? target : { pid: target.pid, envoyPid: target.envoyPid },
        () => loadgen(['http', '-url', `${envoy.url}/v1/chat/completions`, '-rate', String(options.envoyRate), '-name', this.id], context),
      );
      return ENVOY_VARIANTS[variant].usesService ? result : { ...result, usage: undefined };
    },
  });

  const envoyClosed = (variant: EnvoyVariant): Step => ({
    id: `envoy/${variant}/closed`,
    section: 'envoy-closed',
    title: ENVOY_VARIANTS[variant].title,
    expectedS: measured,
    prepare: (fixtures) => fixtures.envoy(variant, 'plain'),
    async run(context) {
      const { envoy, ...target } = await envoyTarget(context, variant, 'plain');
      const result = await measure(
        { id: this.id, section: this.section, title: this.title },
        ENVOY_VARIANTS[variant].usesService ? target : { pid: target.pid, envoyPid: target.envoyPid },
        () => h2load(`${envoy.url}/v1/chat/completions`, paths.httpBody, HTTP_HEADERS, context),
      );
      return ENVOY_VARIANTS[variant].usesService ? result : { ...result, usage: undefined };
    },
  });

  const variants = Object.keys(ENVOY_VARIANTS) as EnvoyVariant[];
  const peers = buildPeerSteps({ ...options, checkBody: paths.checkBody, workDir: join(paths.work, 'envoy'), measure, h2load, loadgen });
  /** Each inner list runs `rounds` times, interleaved, and is merged per id. */
  return [
    [directClosed('trivial', 'check'), directClosed('plain', 'check'), ...peers.direct, directClosed('plain', 'process'), directClosed('trivial', 'process')],
    [directClosed('traced', 'check'), directClosed('traced', 'process')],
    [directOpen('trivial', 'check', 1000), ...options.rates.flatMap((rate) => [directOpen('plain', 'check', rate), directOpen('plain', 'process', rate)])],
    [directOpen('traced', 'check', 1000), directOpen('traced', 'process', 1000)],
    [
      ...variants.map((variant) => envoyOpen(variant, 'plain')),
      envoyOpen('ext-authz', 'traced'),
      envoyOpen('ext-proc', 'traced'),
      // The same Envoy filters calling the trivial server: what the runtime alone adds.
      envoyOpen('ext-authz', 'trivial'),
      envoyOpen('ext-proc', 'trivial'),
      // ... and a Go server with a fixed reply: what the gRPC hop costs without Node.
      envoyOpen('ext-authz', 'go'),
      envoyOpen('ext-proc', 'go'),
      ...peers.envoyOpen,
    ],
    variants.map((variant) => envoyClosed(variant)),
    peers.sharedLimits,
    peers.tail,
  ];
}

/** Groups that are measured in interleaved rounds (ratios and added latency); the others run once. */
const ROUND_GROUPS = new Set([0, 4, 6]);

/** Seconds after the flood when the memory scenario reads the settled RSS. */
const SETTLE_S = 30;

async function memoryScenario(options: Options, paths: Paths, progress: ReturnType<typeof createProgress>, index: number, total: number): Promise<MemoryResult> {
  progress.note(`starting genops-mesh for the memory scenario (policy bench/policy-keys.yaml: buckets refill in a day, so none is swept during the run)`);
  const service = await startService({ policyPath: join(REPO_ROOT, 'bench/policy-keys.yaml'), env: { LOG_LEVEL: 'info', NODE_OPTIONS: options.nodeOptions } });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const rssIdleMb = rssMb(service.process.pid);
    progress.step(index, total, `memory/keys: ${options.keys.toLocaleString('en-US')} distinct customer ids through Check`, options.keys / 12_000 + SETTLE_S);
    const usage = sampleUsage(service.process.pid);
    const result = await runLoadgen({
      binary: paths.loadgen,
      args: ['grpc', '-addr', `127.0.0.1:${service.grpcPort}`, '-kind', 'check', '-conns', '4', '-concurrency', '64', '-requests', String(options.keys), '-keys', String(options.keys), '-customer-prefix', 'mem-', '-name', 'memory/keys'],
      onProgress: (done, failed) => progress.update(`${done.toLocaleString('en-US')} sent${failed ? `, ${failed} failed` : ''} · RSS ${rssMb(service.process.pid).toFixed(0)} MB`),
    });
    // RSS once the flood is over ("after"), and at rest ("settled"): V8 collects nothing while
    // the process idles, so the two show whether anything gives memory back.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const sampled = usage.stop();
    const counters = await readCounters(service.adminUrl);
    progress.update(`RSS ${(sampled?.rssMb ?? 0).toFixed(0)} MB after the flood; waiting ${SETTLE_S} s for it to settle`);
    await new Promise((resolve) => setTimeout(resolve, (SETTLE_S - 5) * 1_000));
    const rssSettledMb = rssMb(service.process.pid);
    const memory: MemoryResult = {
      keys: options.keys,
      durationS: result.durationS,
      throughputRps: result.throughputRps,
      allowed: counters.decisions.ALLOWED ?? 0,
      failed: result.failed + result.denied,
      rssIdleMb: Math.round(rssIdleMb),
      rssAfterMb: sampled?.rssMb ?? 0,
      rssPeakMb: sampled?.rssPeakMb ?? 0,
      rssSettledMb: Math.round(rssSettledMb),
      heapUsedMb: counters.heapUsedMb,
      cpuPercent: sampled?.cpuPercent ?? 0,
    };
    progress.done(`RSS ${memory.rssPeakMb.toFixed(0)} MB peak with ${memory.keys.toLocaleString('en-US')} keys (idle ${memory.rssIdleMb} MB, after ${memory.rssAfterMb.toFixed(0)} MB, settled ${memory.rssSettledMb} MB), ${memory.failed} failed`);
    return memory;
  } finally {
    await service.stop({ timeoutMs: 15_000 }).catch(() => undefined);
  }
}

function version(command: string, args: string[], pattern: RegExp): string {
  try {
    const output = execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    return pattern.exec(output)?.[1] ?? output.trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function gitRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bench', 'proto', 'package.json'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? ' (with uncommitted changes)' : ''}`;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  if (options.scenarios.includes('soak')) return soak(options, argv);
  const loadgen = join(REPO_ROOT, '.tools/bin/genops-loadgen');
  const work = join(REPO_ROOT, '.tmp/bench');
  mkdirSync(work, { recursive: true });
  const paths: Paths = { loadgen, checkBody: join(work, 'check.bin'), processBody: join(work, 'process.bin'), httpBody: join(work, 'chat.json'), work };

  // Identity (issue 13): its own services, one group in interleaved rounds: --scenario identity/
  const identity = identitySteps({ durationS: options.durationS, warmupS: options.warmupS, workDir: work, policyPath: join(REPO_ROOT, 'bench/policy.yaml') });
  // GENOPS_WORKERS (issue 19): one group in interleaved rounds: --scenario workers/
  const workers = workerSteps({ durationS: options.durationS, warmupS: options.warmupS, workDir: work, policyPath: join(REPO_ROOT, 'bench/policy.yaml'), workers: options.workers, httpBody: paths.httpBody, httpHeaders: HTTP_HEADERS });
  const groups: Step[][] = [...buildSteps(options, paths), identity.steps, workers.steps];
  const selected = (id: string) => options.scenarios.length === 0 || options.scenarios.some((prefix) => id.startsWith(prefix));
  const memorySelected = selected('memory/keys');
  // The AI exchange side by side (issue 18): its own services and Envoys, after the plan.
  const aiExchangeSelected = selected('envoy/ai-exchange');
  if (options.list) {
    for (const group of groups) for (const step of group) process.stdout.write(`${step.id}\n`);
    process.stdout.write('memory/keys\nenvoy/ai-exchange\n');
    return;
  }
  if (!existsSync(loadgen)) throw new Error(`${loadgen} is missing: run \`bash scripts/bench-setup.sh\` (npm run bench does)`);
  const plan: { step: Step; round: number }[] = [];
  groups.forEach((group, index) => {
    const steps = group.filter((step) => selected(step.id));
    const rounds = ROUND_GROUPS.has(index) || group === identity.steps || group === workers.steps ? options.rounds : 1;
    for (let round = 1; round <= rounds; round++) for (const step of steps) plan.push({ step, round });
  });
  if (plan.length === 0 && !memorySelected && !aiExchangeSelected) throw new Error(`--scenario ${options.scenarios.join(',')} selects nothing; --list shows the ids`);
  const total = plan.length + (memorySelected ? 1 : 0);

  execFileSync(loadgen, ['encode', '-kind', 'check', '-out', paths.checkBody]);
  execFileSync(loadgen, ['encode', '-kind', 'process', '-out', paths.processBody]);
  writeFileSync(paths.httpBody, '{"model":"claude-opus","messages":[{"role":"user","content":"Summarize the ticket, please."}]}');

  const progress = createProgress();
  const estimate = plan.reduce((sum, { step }) => sum + step.expectedS, 0) + (memorySelected ? options.keys / 12_000 + SETTLE_S + 5 : 0);
  progress.note(`${total} steps, about ${Math.ceil(estimate / 60)} min plus start-up`);
  const startedAt = new Date();
  const loadAtStart = loadavg().map((value) => value.toFixed(2)).join(' ');
  const fixtures = new Fixtures({ loadgen, workDir: join(work, 'envoy'), policyPath: join(REPO_ROOT, 'bench/policy.yaml'), serviceNodeOptions: options.nodeOptions, onNote: (message) => progress.note(message) });
  const stop = async () => {
    await fixtures.stopAll();
    await identity.stopAll();
    await workers.stopAll();
  };
  process.once('SIGINT', () => {
    progress.note('interrupted: stopping everything');
    void stop().then(() => process.exit(130));
  });

  const raw: ScenarioResult[] = [];
  let memory: MemoryResult | undefined;
  let aiExchange: string | undefined;
  try {
    // Everything the plan needs starts before the first measurement.
    for (const step of new Set(plan.map((entry) => entry.step))) await step.prepare(fixtures);
    let index = 0;
    for (const { step, round } of plan) {
      index++;
      progress.step(index, total, `${step.id}${options.rounds > 1 && plan.filter((entry) => entry.step === step).length > 1 ? ` (round ${round})` : ''}`, step.expectedS);
      const context: StepContext = {
        fixtures,
        onProgress: (done, failed) => progress.update(`${done.toLocaleString('en-US')} done${failed ? `, ${failed} failed` : ''}`),
        setDetail: (detail) => progress.update(detail),
      };
      const result = await step.run(context);
      raw.push(result);
      const { load } = result;
      progress.done(
        `${Math.round(load.throughputRps).toLocaleString('en-US')} req/s, p50 ${(load.latencyUs.p50 / 1000).toFixed(2)} ms, p99 ${(load.latencyUs.p99 / 1000).toFixed(2)} ms` +
          `${result.usage ? `, CPU ${result.usage.cpuPercent.toFixed(0)}%` : ''}${load.failed ? `, ${load.failed} FAILED` : ''}`,
      );
    }
    await fixtures.stopAll();
    if (memorySelected) memory = await memoryScenario(options, paths, progress, total, total);
    if (aiExchangeSelected) {
      progress.note('envoy/ai-exchange: the AI exchange side by side (JSON and 500-chunk SSE, budget in force)');
      aiExchange = await runAiExchange({ requests: Math.max(500, options.durationS * 200), streams: Math.max(8, options.durationS * 4), concurrency: 4, rounds: options.rounds, note: (message) => progress.note(message) });
    }
  } finally {
    await stop();
  }

  const ids = [...new Set(raw.map((result) => result.id))];
  const results = withAddedLatency(ids.map((id) => mergeRounds(raw.filter((result) => result.id === id))));
  const envoyBin = findEnvoy();
  const report: BenchReport = {
    meta: {
      command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', memory: `${Math.round(totalmem() / 1024 ** 3)} GiB`, kernel: release(), 'load average (1/5/15 min) at start': loadAtStart, 'at end': loadavg().map((value) => value.toFixed(2)).join(' ') },
      versions: {
        node: process.version,
        envoy: version(envoyBin, ['--version'], /version: [0-9a-f]+\/([0-9.]+)/),
        h2load: version('h2load', ['--version'], /(nghttp2\/[\d.]+)/),
        'genops-mesh': gitRevision(),
        'genops-mesh node flags': [...SERVICE_NODE_FLAGS, ...(options.nodeOptions ? [`NODE_OPTIONS="${options.nodeOptions}"`] : [])].join(' '),
        ...peerVersions(),
      },
      options: { ...options, out: undefined },
    },
    results,
    memory,
    targets: [...evaluateTargets(results, memory, options.envoyRate), ...evaluatePeerTargets(results, options.envoyRate)],
  };

  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const dir = join(options.out, stamp);
  mkdirSync(dir, { recursive: true });
  const markdown = renderMarkdown(report) + renderPeerMarkdown(report, options.envoyRate) + (aiExchange ? `\n${aiExchange}` : '');
  writeFileSync(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(dir, 'report.md'), `# genops-mesh bench\n\n${markdown}\n![latency percentiles](report.svg)\n`);
  writeFileSync(join(dir, 'report.svg'), renderLatencyChart(results, `genops-mesh latency percentiles (${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`));
  const latest = join(options.out, 'latest');
  rmSync(latest, { recursive: true, force: true });
  mkdirSync(latest, { recursive: true });
  for (const file of ['report.json', 'report.md', 'report.svg']) copyFileSync(join(dir, file), join(latest, file));
  if (options.updateResults) updateResultsFile(markdown);

  process.stdout.write(`\n${markdown}\nReport: ${dir}/report.{md,json,svg} (also ${latest}/)\n`);
  rmSync(work, { recursive: true, force: true });
}

async function soak(options: Options, argv: readonly string[]): Promise<void> {
  if (options.scenarios.length > 1) throw new Error('--scenario soak runs on its own: it takes 20 minutes (or --duration) and wants a quiet machine');
  const startedAt = new Date();
  const result = await runSoak(
    { durationS: options.durationGiven ? options.durationS : 1_200, rate: options.soakRate, out: options.out },
    createProgress(),
    () => loadavg().map((value) => value.toFixed(2)).join(' '),
  );
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const dir = join(options.out, `soak-${stamp}`);
  mkdirSync(dir, { recursive: true });
  const markdown = `${renderSoakMarkdown(result)}\nCommand: \`npm run bench -- ${argv.join(' ')}\` (${startedAt.toISOString()}, genops-mesh ${gitRevision()}, Node ${process.version}, ${availableParallelism()} cores)\n`;
  writeFileSync(join(dir, 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(dir, 'soak.md'), `# genops-mesh soak\n\n${markdown}`);
  process.stdout.write(`\n${markdown}\nReport: ${dir}/soak.{md,json}\n`);
  if (result.errors > 0 || !result.moneyExact || !result.rssFlat) process.exitCode = 1;
}

/** Replaces the part of bench/RESULTS.md between the generated markers. */
function updateResultsFile(markdown: string): void {
  const path = join(REPO_ROOT, 'bench/RESULTS.md');
  const begin = '<!-- bench:begin (generated by npm run bench -- --update-results) -->';
  const end = '<!-- bench:end -->';
  const current = existsSync(path) ? readFileSync(path, 'utf8') : `# Bench results\n\n${begin}\n${end}\n`;
  const from = current.indexOf(begin);
  const to = current.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${path} lacks the ${begin} … ${end} markers`);
  writeFileSync(path, `${current.slice(0, from + begin.length)}\n${markdown}\n${current.slice(to)}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
