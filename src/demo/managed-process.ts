import { spawn, type ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { createInterface } from 'node:readline';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Every stdout line, in order. */
  readonly stdoutLines: readonly string[];
  /** The last few KiB of stderr, for error messages. */
  stderrTail(): string;
  /** Exit code once exited (null when killed by a signal); undefined while running. */
  readonly exitCode: number | null | undefined;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  /**
   * Sends `signal` (default SIGTERM) and waits for the exit. After `timeoutMs`
   * it sends SIGKILL and rejects. Resolves at once if already exited.
   */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<number | null>;
}

const STDERR_TAIL_BYTES = 8 * 1024;
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Nothing outlives the process that started it, even when that one dies abruptly. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/** Spawns a child with piped output, collected for assertions and error messages. */
export function spawnManaged(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv, options: { cwd?: string } = {}): ManagedProcess {
  installExitHook();
  const child = spawn(command, args, { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  running.add(child);
  const stdoutLines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => stdoutLines.push(line));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      running.delete(child);
      resolve(code);
    });
  });

  return {
    name,
    pid: child.pid,
    stdoutLines,
    stderrTail: () => stderr,
    get exitCode() {
      return exitCode;
    },
    exited,
    async stop({ signal = 'SIGTERM', timeoutMs = 10_000 } = {}) {
      if (exitCode !== undefined) return exitCode;
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const outcome = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`${name} (pid ${child.pid}) did not exit within ${timeoutMs} ms of ${signal}; killed`);
      }
      return outcome;
    },
  };
}

/**
 * Polls `url` until it answers 200, failing early (with the process's stderr)
 * if `process` exits first, and after `timeoutMs` otherwise.
 */
export async function waitUntilReady(process: ManagedProcess, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (process.exitCode !== undefined) {
      throw new Error(`${process.name} exited with code ${process.exitCode} before it was ready:\n${process.stderrTail() || process.stdoutLines.slice(-20).join('\n')}`);
    }
    last = await probe(url);
    if (last === '200') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${process.name} was not ready at ${url} within ${timeoutMs} ms (last: ${last}):\n${process.stderrTail()}`);
}

function probe(url: string): Promise<string> {
  return new Promise((resolve) => {
    const request = get(url, { timeout: 1_000, agent: false }, (response) => {
      response.resume();
      resolve(String(response.statusCode));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', (error) => resolve(error.message));
  });
}

/** The lines that are JSON objects (structured logs), parsed; other lines are left out. */
export function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  return lines.flatMap((line) => {
    if (!line.startsWith('{')) return [];
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}
