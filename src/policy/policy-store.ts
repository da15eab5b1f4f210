import { readFileSync } from 'node:fs';
import { GenopsError } from '../errors/genops-error.js';
import { compilePolicy, type CompiledPolicy } from './compiled-policy.js';
import { parsePolicy } from './load-policy.js';
import { createPolicyWatcher, type PolicyStore, type PolicyStoreOptions } from './policy-watcher.js';

export type { PolicyStore, ReloadOutcome } from './policy-watcher.js';

export function loadPolicyText(text: string, source: string): CompiledPolicy {
  return compilePolicy(parsePolicy(text, source), text, source);
}

export function loadPolicyFile(path: string): CompiledPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new GenopsError('invalid_policy', `${path}: cannot read policy file: ${(error as Error).message}`, { cause: error });
  }
  return loadPolicyText(text, path);
}

/** The policy file watched, each version parsed and validated in this process (zod and yaml loaded here). */
export function createPolicyStore(options: Omit<PolicyStoreOptions, 'load'> & Partial<Pick<PolicyStoreOptions, 'load'>>): PolicyStore {
  return createPolicyWatcher({ load: loadPolicyText, ...options });
}
