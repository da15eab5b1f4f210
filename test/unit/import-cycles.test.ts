/**
 * No module of src/ imports itself through others (type-only imports count too): a cycle makes
 * load order decide which binding is still undefined, and ties modules that have one job each.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/index.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Each file's relative imports (static, dynamic, re-exports), as resolved paths. */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    graph.set(file, importedFiles.filter(({ fileName }) => fileName.startsWith('.')).map(({ fileName }) => resolve(dirname(file), fileName.replace(/\.js$/, '.ts'))));
  }
  return graph;
}

function cyclesOf(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string) => {
    const at = path.indexOf(file);
    if (at >= 0) {
      cycles.push([...path.slice(at), file]);
      return;
    }
    if (done.has(file)) return;
    path.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    path.pop();
    done.add(file);
  };
  for (const file of graph.keys()) visit(file);
  return cycles;
}

describe('imports of src/', () => {
  it('form no cycle', () => {
    const cycles = cyclesOf(importGraph(join(REPO_ROOT, 'src'))).map((cycle) => cycle.map((file) => relative(REPO_ROOT, file)).join(' -> '));
    expect(cycles).toEqual([]);
  });

  it('would name a cycle (the finder sees imports, re-exports and type-only imports)', () => {
    const graph = new Map([
      ['/a.ts', ['/b.ts']],
      ['/b.ts', ['/c.ts']],
      ['/c.ts', ['/a.ts']],
      ['/d.ts', ['/a.ts']],
    ]);
    expect(cyclesOf(graph)).toEqual([['/a.ts', '/b.ts', '/c.ts', '/a.ts']]);
    const { importedFiles } = ts.preProcessFile("import type { A } from './a.js';\nexport { B } from './b.js';\nconst c = await import('./c.js');\n", true, true);
    expect(importedFiles.map(({ fileName }) => fileName)).toEqual(['./a.js', './b.js', './c.js']);
  });
});
