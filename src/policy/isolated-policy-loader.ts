import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { GenopsError, type GenopsErrorCode } from '../errors/genops-error.js';
import { compilePolicy, type CompiledPolicy } from './compiled-policy.js';
import type { PolicyDocument } from './policy-schema.js';

/** The compiled child script; dist/ sits at the same depth from src/ and dist/. */
const CHILD_SCRIPT = fileURLToPath(new URL('../../dist/policy/parse-policy-child.js', import.meta.url));

export interface IsolatedPolicyLoader {
  /** The validated document, as parsePolicy (load-policy.ts) returns it in-process. */
  parse(text: string, source: string): Promise<PolicyDocument>;
  loadText(text: string, source: string): Promise<CompiledPolicy>;
  loadFile(path: string): Promise<CompiledPolicy>;
}

export interface IsolatedPolicyLoaderOptions {
  /** A parse that takes longer is stopped and reported (default 30 s). */
  readonly timeoutMs?: number;
}

/**
 * Loads policies as policy-store.ts does, with the parsing and validation (yaml, zod) in a
 * short-lived child process: the two libraries and the schema are ~10 MB of the serving
 * process's RSS that it needs only while a policy is read, at start and on a reload. The
 * child answers with the validated document as JSON (a policy is plain YAML data: strings,
 * numbers, booleans, lists and maps), compiled here; its errors are the same messages.
 * A start or a reload takes ~0.1–0.3 s longer (a node process starting).
 */
export function createIsolatedPolicyLoader(options: IsolatedPolicyLoaderOptions = {}): IsolatedPolicyLoader {
  const timeoutMs = options.timeoutMs ?? 30_000;

  function parseInChild(text: string, source: string): Promise<PolicyDocument> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CHILD_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(new GenopsError('internal', `${source}: cannot start the policy parser: ${error.message}`, { cause: error }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        let reply: { document?: PolicyDocument; error?: { code: GenopsErrorCode; message: string } } | undefined;
        try {
          reply = JSON.parse(Buffer.concat(out).toString('utf8')) as typeof reply;
        } catch {
          reply = undefined;
        }
        if (reply?.document !== undefined) resolve(reply.document);
        else if (reply?.error) reject(new GenopsError(reply.error.code, reply.error.message));
        else {
          const why = signal === 'SIGKILL' ? `took longer than ${timeoutMs} ms` : `exited with ${signal ?? code}: ${Buffer.concat(err).toString('utf8').trim().split('\n', 1)[0] ?? ''}`;
          reject(new GenopsError('internal', `${source}: the policy parser ${why}`));
        }
      });
      child.stdin.on('error', () => undefined); // a child that died early is reported by 'close'
      child.stdin.end(JSON.stringify({ text, source }));
    });
  }

  const loadText = async (text: string, source: string) => compilePolicy(await parseInChild(text, source), text, source);
  return {
    parse: parseInChild,
    loadText,
    async loadFile(path) {
      const text = await readFile(path, 'utf8').catch((error: Error) => {
        throw new GenopsError('invalid_policy', `${path}: cannot read policy file: ${error.message}`, { cause: error });
      });
      return loadText(text, path);
    },
  };
}
