import { watch, watchFile, unwatchFile, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { GenopsError } from '../errors/genops-error.js';
import type { CompiledPolicy } from './compiled-policy.js';

export type ReloadOutcome =
  | { readonly result: 'success'; readonly policy: CompiledPolicy }
  | { readonly result: 'unchanged' }
  | { readonly result: 'failure'; readonly error: GenopsError };

export interface PolicyStore {
  /** The policy in force: always the last one that loaded cleanly. */
  current(): CompiledPolicy;
  /** Re-reads the file now; a broken file leaves the current policy in force. */
  reload(): Promise<ReloadOutcome>;
  close(): void;
}

export interface PolicyStoreOptions {
  readonly path: string;
  readonly initial: CompiledPolicy;
  /** Parses, validates and compiles a policy text (policy-store.ts in this process; isolated-policy-loader.ts in a child). */
  readonly load: (text: string, source: string) => CompiledPolicy | Promise<CompiledPolicy>;
  readonly onReload?: (outcome: ReloadOutcome) => void;
  /** Polling interval; catches edits that file-system events miss (network volumes, some editors). */
  readonly pollIntervalMs?: number;
  readonly debounceMs?: number;
}

/**
 * Watches the policy file and swaps in each version that validates. Watches the
 * directory too, because Kubernetes ConfigMap volumes replace files by swapping
 * a symlink rather than writing them.
 */
export function createPolicyWatcher(options: PolicyStoreOptions): PolicyStore {
  const { path, onReload, load } = options;
  const debounceMs = options.debounceMs ?? 100;
  const pollIntervalMs = options.pollIntervalMs ?? 2_000;
  let policy = options.initial;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let reloading: Promise<ReloadOutcome> | undefined;
  let again = false;

  async function reloadOnce(): Promise<ReloadOutcome> {
    let outcome: ReloadOutcome;
    try {
      const text = await readFile(path, 'utf8').catch((error: Error) => {
        throw new GenopsError('invalid_policy', `${path}: cannot read policy file: ${error.message}`, { cause: error });
      });
      const next = await load(text, path);
      if (next.checksum === policy.checksum) outcome = { result: 'unchanged' };
      else {
        policy = next;
        outcome = { result: 'success', policy: next };
      }
    } catch (error) {
      const wrapped =
        error instanceof GenopsError ? error : new GenopsError('invalid_policy', `${path}: ${String(error)}`, { cause: error });
      outcome = { result: 'failure', error: wrapped };
    }
    onReload?.(outcome);
    return outcome;
  }

  async function reload(): Promise<ReloadOutcome> {
    if (reloading) {
      again = true;
      return reloading;
    }
    reloading = reloadOnce();
    try {
      return await reloading;
    } finally {
      reloading = undefined;
      if (again && !closed) {
        again = false;
        void reload();
      }
    }
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), debounceMs);
  }

  const fileName = basename(path);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (!changed || changed === fileName || changed.startsWith('..')) schedule();
    });
    watcher.on('error', () => undefined);
  } catch {
    watcher = undefined; // polling below still catches changes
  }
  const onPoll = () => schedule();
  watchFile(path, { persistent: false, interval: pollIntervalMs }, onPoll);

  return {
    current: () => policy,
    reload,
    close() {
      closed = true;
      clearTimeout(timer);
      watcher?.close();
      unwatchFile(path, onPoll);
    },
  };
}
