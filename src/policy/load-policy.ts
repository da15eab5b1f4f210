import { LineCounter, parseDocument, isMap, isNode, isScalar, type Document } from 'yaml';
import type { z } from 'zod';
import { GenopsError } from '../errors/genops-error.js';
import { policySchema, type PolicyDocument } from './policy-schema.js';

/**
 * Parses and validates policy YAML. Every problem names the file, the YAML
 * path (with line:column where the node exists) and what is wrong; all
 * problems are reported at once so a broken file is fixed in one pass.
 */
export function parsePolicy(text: string, source: string): PolicyDocument {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    const problems = document.errors.map((error) => {
      const [start] = error.pos;
      const { line, col } = lineCounter.linePos(start);
      return `${source}:${line}:${col}: YAML syntax: ${firstLine(error.message)}`;
    });
    throw new GenopsError('invalid_policy', problems.join('; '));
  }
  const value: unknown = document.toJS({ maxAliasCount: 100 });
  const result = policySchema.safeParse(value, { reportInput: true });
  if (!result.success) {
    const problems = result.error.issues.map((issue) => describeIssue(issue, document, lineCounter, source));
    throw new GenopsError('invalid_policy', problems.join('; '));
  }
  return result.data;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  document: Document,
  lineCounter: LineCounter,
  source: string,
): string {
  const path = issue.path.map((segment) => (typeof segment === 'symbol' ? String(segment) : segment));
  let location = source;
  const node =
    issue.code === 'unrecognized_keys' ? (keyNode(document, path, issue.keys[0]) ?? nearestNode(document, path)) : nearestNode(document, path);
  if (node?.range) {
    const { line, col } = lineCounter.linePos(node.range[0]);
    location = `${source}:${line}:${col}`;
  }
  return `${location}: ${formatYamlPath(path)}: ${describeProblem(issue)}`;
}

function nearestNode(document: Document, path: (string | number)[]): { range?: [number, number, number] | null } | undefined {
  for (let length = path.length; length >= 0; length--) {
    const node = document.getIn(path.slice(0, length), true);
    if (isNode(node)) return node as { range?: [number, number, number] | null };
  }
  return undefined;
}

/** The key itself, so an unknown key is reported where it is written. */
function keyNode(document: Document, path: (string | number)[], key: string | undefined): { range?: [number, number, number] | null } | undefined {
  const map = path.length === 0 ? document.contents : document.getIn(path, true);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((item) => isScalar(item.key) && item.key.value === key);
  return pair && isNode(pair.key) ? (pair.key as { range?: [number, number, number] | null }) : undefined;
}

function describeProblem(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${key}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) return `is required (${issue.expected})`;
  if (issue.code === 'invalid_type') return `must be ${article(issue.expected)}, not ${describeValue(issue.input)}`;
  if (issue.code === 'invalid_key') return issue.issues.map((inner) => inner.message).join('; ');
  return issue.message;
}

export function formatYamlPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(document)';
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? segment : `.${segment}`;
  }
  return text;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0] ?? message;
}

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return `${typeof value} ${JSON.stringify(value)}`;
}
