import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../src/demo/repo-root.js';

/** deploy/default-policy.yaml with `edit` applied to its spec, written as `dir/name`; returns the path. */
export function writeDefaultPolicy(dir: string, name: string, edit: (spec: Record<string, unknown>) => void): string {
  const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  edit(policy.spec);
  const path = join(dir, name);
  writeFileSync(path, stringify(policy));
  return path;
}
