import { join } from 'node:path';
import { spawnManaged, type ManagedProcess } from '../../src/demo/managed-process.js';
import { REPO_ROOT } from '../../src/demo/repo-root.js';
import { startEnvoy, type RunningEnvoy } from '../../src/demo/start-envoy.js';
import { startService, type RunningService } from '../../src/demo/start-service.js';
import { ENVOY_VARIANTS, writeEnvoyTemplate, type EnvoyVariant } from './envoy-configs.js';

/** A child that printed {"port":N} on its first stdout line. */
export interface PortServer {
  readonly port: number;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startPortServer(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<PortServer> {
  const child = spawnManaged(name, command, args, env);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const line = child.stdoutLines.find((text) => text.startsWith('{"port":'));
    if (line) {
      const { port } = JSON.parse(line) as { port: number };
      return { port, process: child, stop: async () => void (await child.stop({ timeoutMs: 5_000 }).catch(() => undefined)) };
    }
    if (child.exitCode !== undefined) throw new Error(`${name} exited with ${child.exitCode}: ${child.stderrTail()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await child.stop({ signal: 'SIGKILL' }).catch(() => undefined);
  throw new Error(`${name} did not report its port within 20 s: ${child.stderrTail()}`);
}

export type ServiceKind = 'plain' | 'traced';
/**
 * What an Envoy variant with an external filter calls: genops-mesh, the
 * trivial grpc-js server (the Node runtime's floor), or a fixed-reply Go
 * gRPC server (the floor of the hop itself).
 */
export type EnvoyBackend = ServiceKind | 'trivial' | 'go' | 'lean';

export interface FixtureOptions {
  readonly loadgen: string;
  /** Where rendered Envoy templates go. */
  readonly workDir: string;
  readonly policyPath: string;
  /** NODE_OPTIONS for genops-mesh (e.g. V8 heap flags); empty for none. */
  readonly serviceNodeOptions: string;
  readonly onNote: (message: string) => void;
}

/**
 * Everything the scenarios run against, started on first use on free
 * loopback ports, shared between scenarios, and stopped by stopAll().
 */
export class Fixtures {
  private readonly started = new Map<string, Promise<unknown>>();
  private readonly stoppers: { key: string; stop: () => Promise<unknown> }[] = [];
  private readonly options: FixtureOptions;

  constructor(options: FixtureOptions) {
    this.options = options;
  }

  private once<T>(key: string, start: () => Promise<T>, stop: (value: T) => Promise<unknown>): Promise<T> {
    let promise = this.started.get(key) as Promise<T> | undefined;
    if (!promise) {
      promise = start();
      this.started.set(key, promise);
      this.stoppers.push({ key, stop: async () => stop(await promise!) });
    }
    return promise;
  }

  /**
   * Starts what `start` makes once per `key`, shares it, and stops it in
   * stopAll(); keys starting with "envoy:" stop first (they call the rest).
   */
  shared<T>(key: string, start: () => Promise<T>, stop: (value: T) => Promise<unknown>): Promise<T> {
    return this.once(key, start, stop);
  }

  /** A line on the run's progress display. */
  note(message: string): void {
    this.options.onNote(message);
  }

  /** The trivial fixed-reply server (bench/trivial-server.ts) on this same Node. */
  trivial(instance = 'main'): Promise<PortServer> {
    return this.once(
      `trivial:${instance}`,
      () => {
        this.options.onNote(`starting the trivial grpc-js server for ${instance}`);
        return startPortServer('trivial-server', process.execPath, ['--import', join(REPO_ROOT, 'bench/register-ts.mjs'), join(REPO_ROOT, 'bench/trivial-server.ts')]);
      },
      (server) => server.stop(),
    );
  }

  upstream(): Promise<PortServer> {
    return this.once('upstream', () => startPortServer('upstream', this.options.loadgen, ['upstream'], { ...process.env, GOMAXPROCS: '1' }), (server) => server.stop());
  }

  /**
   * A Go gRPC server answering every call with an empty message: for Check
   * an empty CheckResponse, which Envoy takes as OK.
   */
  goBackend(): Promise<PortServer> {
    return this.once('go-backend', () => startPortServer('go-grpc-server', this.options.loadgen, ['sink'], { ...process.env, GOMAXPROCS: '1' }), (server) => server.stop());
  }

  /** bench/lean-process-server.ts: the trivial server's fixed ext_proc replies on node:http2 alone (no grpc-js). */
  lean(): Promise<PortServer> {
    return this.once('lean', () => startPortServer('lean-process-server', process.execPath, ['--import', join(REPO_ROOT, 'bench/register-ts.mjs'), join(REPO_ROOT, 'bench/lean-process-server.ts')]), (server) => server.stop());
  }

  /** A Go ext_proc server answering every message with a CONTINUE of its kind: the transport floor of ext_proc. */
  goExtProc(): Promise<PortServer> {
    return this.once('go-ext-proc', () => startPortServer('go-ext-proc-server', this.options.loadgen, ['extproc'], { ...process.env, GOMAXPROCS: '1' }), (server) => server.stop());
  }

  /** A local OTLP/gRPC endpoint that accepts every export. */
  sink(): Promise<PortServer> {
    return this.once('sink', () => startPortServer('otlp-sink', this.options.loadgen, ['sink'], { ...process.env, GOMAXPROCS: '1' }), (server) => server.stop());
  }

  /**
   * genops-mesh (dist/main.js) with the bench policy; `traced` exports every
   * span to the sink. Each `instance` is its own process, so that latency
   * at a steady rate is not measured on a heap grown by an earlier flood.
   */
  service(kind: ServiceKind, instance = 'main'): Promise<RunningService> {
    return this.once(
      `service:${kind}:${instance}`,
      async () => {
        this.options.onNote(`starting genops-mesh for ${instance} (${kind === 'traced' ? 'tracing on, every span exported to a local OTLP sink' : 'OTEL_SDK_DISABLED=true'})`);
        const env: Record<string, string> = { LOG_LEVEL: 'info', NODE_OPTIONS: this.options.serviceNodeOptions };
        if (kind === 'traced') {
          const sink = await this.sink();
          Object.assign(env, { OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.port}`, OTEL_SERVICE_NAME: 'genops-mesh-bench' });
        }
        return startService({ policyPath: this.options.policyPath, env });
      },
      (service) => service.stop({ timeoutMs: 15_000 }).catch(() => undefined),
    );
  }

  /** A real Envoy (one worker) in `variant`, calling `backend` when the variant has an external filter. */
  envoy(variant: EnvoyVariant, backend: EnvoyBackend = 'plain'): Promise<RunningEnvoy> {
    const usesService = ENVOY_VARIANTS[variant].usesService;
    return this.once(
      `envoy:${variant}:${usesService ? backend : '-'}`,
      async () => {
        this.options.onNote(`starting Envoy: ${ENVOY_VARIANTS[variant].title}${usesService && backend !== 'plain' ? ` (${backend})` : ''}`);
        const upstream = await this.upstream();
        const vars: Record<string, string | number> = { UPSTREAM_PORT: upstream.port };
        if (usesService) {
          if (backend === 'trivial' || backend === 'go' || backend === 'lean') {
            const server = backend === 'trivial' ? await this.trivial('envoy') : backend === 'lean' ? await this.lean() : variant.startsWith('ext-proc') ? await this.goExtProc() : await this.goBackend();
            Object.assign(vars, { GENOPS_HOST: '127.0.0.1', GENOPS_PORT: server.port });
          } else {
            const service = await this.service(backend, 'envoy');
            Object.assign(vars, { GENOPS_HOST: service.host, GENOPS_PORT: service.grpcPort });
          }
        }
        return startEnvoy({ config: writeEnvoyTemplate(variant, this.options.workDir), vars });
      },
      (envoy) => envoy.stop().catch(() => undefined),
    );
  }

  /** Stops everything: Envoys first (they call the services), then the rest in reverse start order. */
  async stopAll(): Promise<void> {
    const order = [...this.stoppers].reverse().sort((a, b) => Number(b.key.startsWith('envoy:')) - Number(a.key.startsWith('envoy:')));
    for (const { stop } of order) await stop().catch(() => undefined);
    this.stoppers.length = 0;
    this.started.clear();
  }
}
