import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../../support/index.js';

const run = promisify(execFile);
const TOOLS_BIN = join(REPO_ROOT, '.tools/bin');

/** A Kubernetes object as rendered (loosely typed: tests assert on its shape). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KubeObject = Record<string, any> & { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } };

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  return (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name)).find(executable);
}

/** .tools/bin/helm (scripts/setup.sh builds it), else helm on PATH. Throws, never skips, when there is none. */
export function findHelm(): string {
  const found = [join(TOOLS_BIN, 'helm')].find(executable) ?? onPath('helm');
  if (!found) throw new Error('helm not found in .tools/bin or on PATH: run `npm run setup` (go install helm.sh/helm/v3/cmd/helm@v3.22.0)');
  return found;
}

/** How to run kustomize: .tools/bin/kustomize, kustomize on PATH, or kubectl's built-in `kubectl kustomize`. */
export function findKustomize(): { command: string; args: string[] } {
  const standalone = [join(TOOLS_BIN, 'kustomize')].find(executable) ?? onPath('kustomize');
  if (standalone) return { command: standalone, args: ['build'] };
  const kubectl = onPath('kubectl');
  if (kubectl) return { command: kubectl, args: ['kustomize'] };
  throw new Error('neither kustomize nor kubectl found: run `npm run setup` (go install sigs.k8s.io/kustomize/kustomize/v5)');
}

export function parseObjects(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((document) => {
      if (document.errors.length > 0) throw new Error(`rendered YAML does not parse: ${document.errors.map((error) => error.message).join('; ')}`);
      return document.toJS() as KubeObject | null;
    })
    .filter((object): object is KubeObject => object !== null);
}

export async function kustomize(dir: string): Promise<KubeObject[]> {
  const { command, args } = findKustomize();
  const { stdout } = await run(command, [...args, join(REPO_ROOT, dir)], { maxBuffer: 16 * 1024 * 1024 });
  return parseObjects(stdout);
}

export async function helm(args: string[]): Promise<string> {
  try {
    const { stdout } = await run(findHelm(), args, { maxBuffer: 16 * 1024 * 1024, cwd: REPO_ROOT });
    return stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`helm ${args.join(' ')} failed:\n${stderr ?? ''}${stdout ?? ''}`, { cause: error });
  }
}

export function find(objects: readonly KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${objects.map((object) => `${object.kind}/${object.metadata.name}`).join(', ')}`);
  return found;
}

export function all(objects: readonly KubeObject[], kind: string): KubeObject[] {
  return objects.filter((object) => object.kind === kind);
}
