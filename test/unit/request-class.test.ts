/**
 * Deny by default for AI traffic: each spelling of a path a client might use to slip an AI call past
 * the body reader is either read as that AI API or refused; headers-only prefixes hold only when
 * every reading of the path is under one.
 */
import { describe, expect, it } from 'vitest';
import { classifyRequest } from '../../src/governance/request-class.js';
import type { Decision } from '../../src/governance/decision.js';
import { selects } from '../../src/governance/selector.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile, loadPolicyText } from '../../src/policy/policy-store.js';
import { normalizePath, pathReadings } from '../../src/usage/request-path.js';
import { readFileSync } from 'node:fs';
import { seededRandom } from '../support/seeded-random.js';

const defaultPolicy = loadPolicyFile(DEFAULT_POLICY_PATH);
const withFiles = loadPolicyText(
  readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace('  rateLimits:', '  usage:\n    headersOnly:\n      - { prefix: /v1/files }\n      - { prefix: /v1/uploads/ }\n  rateLimits:'),
  'with-files.yaml',
);
const classify = (method: string | undefined, path: string | undefined, hasBody = true, policy = withFiles) => classifyRequest({ method, path, hasBody }, policy.usage);

describe('classifying a request: read, headers only, or refused', () => {
  it.each([
    '/v1/chat/completions',
    '/openai/v1/chat/completions?x=1',
    '/v1//chat//completions',
    '/v1/chat%2Fcompletions',
    '/v1/chat%2fcompletions',
    '/v1%2Fchat%2Fcompletions',
    '/V1/Chat/Completions',
    '/v1/chat/completions;',
    '/v1/chat/completions;jsessionid=1',
    '/v1/chat/%63ompletions',
    '/v1/chat%252Fcompletions',
    '/v1/files/../chat/completions',
    '/v1/files/%2e%2e/chat/completions',
    '/v1/files/..;/chat/completions',
    '/v1/files\\..\\chat\\completions',
    '/v1/chat/completions/',
    '/v1/chat/completions#frag',
  ])('POST %s is Chat Completions: its body is read', (path) => {
    expect(classify('POST', path)).toEqual({ kind: 'ai', route: { api: 'openai.chat' } });
  });

  it.each([
    ['/v1/unknown', 'POST'],
    ['/v1/completions-ish', 'PUT'],
    ['/v1/chat/completions', 'PATCH'],
    ['/v1/chat/completions', 'GET'],
    ['/v1/chat/completionsX', 'POST'],
    ['/v1/chat/completions%3F', 'POST'],
    ['/v1/filesystem', 'POST'],
    ['/v1/chat/completions/%2E%2E/%2E%2E/files', 'POST'],
    ['/v1/files%00', 'POST'],
  ])('%s with a body and method %s is refused, the path named', (path, method) => {
    const shape = classify(method, path);
    expect(shape.kind).toBe('unknown');
    expect(shape.kind === 'unknown' && shape.message).toContain(JSON.stringify(path));
  });

  it('without a policy entry, every unreadable body is refused; bodiless requests pass on headers', () => {
    expect(classify('POST', '/v1/files', true, defaultPolicy).kind).toBe('unknown');
    expect(classify('POST', undefined, true, defaultPolicy).kind).toBe('unknown');
    for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST']) expect(classify(method, '/v1/batches/b1/cancel', false, defaultPolicy)).toEqual({ kind: 'headers' });
  });

  it.each(['/v1/files', '/v1/files/', '/v1/files/file-1/content', '/V1/FILES', '/v1//files', '/v1/uploads', '/v1/uploads/u1/parts'])('POST %s under a headers-only prefix is decided on headers', (path) => {
    expect(classify('POST', path)).toEqual({ kind: 'headers' });
  });

  it('a headers-only prefix holds only when every reading of the path is under it', () => {
    expect(classify('POST', '/v1/files/../chat/completions').kind).toBe('ai');
    expect(classify('POST', '/v1/files/../../v2/anything').kind).toBe('unknown');
    expect(classify('POST', '/v1/chat/completions/%2e%2e/%2e%2e/files').kind).toBe('unknown');
  });

  it('normalizes like a server that decodes escaped slashes and resolves dot segments', () => {
    expect(normalizePath('/a/./b/../c//d;p=1/%7Ee%41')).toBe('/a/c/d/~eA');
    expect(normalizePath('/../../x')).toBe('/x');
    expect(normalizePath('/a%20b/%3F')).toBe('/a%20b/%3F');
    expect(pathReadings('/V1/x?y')).toEqual(['/V1/x', '/v1/x']);
  });

  it('reads 2,000 seeded random spellings of /v1/chat/completions as Chat Completions, and never throws on garbage', () => {
    const random = seededRandom(20);
    const spell = (segment: string) =>
      [...segment].map((char) => {
        const cased = random() < 0.3 ? char.toUpperCase() : char;
        return random() < 0.2 ? `%${char.charCodeAt(0).toString(16).padStart(2, '0')}` : cased;
      }).join('');
    const separator = () => (random() < 0.15 ? '%2F' : random() < 0.1 ? '\\' : random() < 0.15 ? '//' : '/');
    for (let index = 0; index < 2_000; index++) {
      let path = '';
      for (const segment of ['v1', 'chat', 'completions']) {
        if (random() < 0.1) path += `${separator()}.`;
        if (random() < 0.1) path += `${separator()}x${separator()}..`;
        path += `${separator()}${spell(segment)}${random() < 0.1 ? ';p=1' : ''}`;
      }
      if (random() < 0.2) path += '?a=b/../files';
      expect(classify('POST', path), path).toEqual({ kind: 'ai', route: { api: 'openai.chat' } });
    }
    for (let index = 0; index < 2_000; index++) {
      const garbage = Array.from({ length: Math.floor(random() * 40) }, () => String.fromCharCode(Math.floor(random() * 0x3000))).join('');
      expect(() => classify('POST', `/${garbage}`)).not.toThrow();
    }
  });

  it('a rate limit or budget selecting a path prefix selects every spelling of it', () => {
    const selector = { teams: undefined, tiers: undefined, projects: undefined, models: undefined, principals: undefined, paths: ['/v1/chat/'] };
    const decision = { context: {}, principal: undefined } as unknown as Decision;
    for (const path of ['/v1/chat/completions', '/V1/chat/completions', '/v1//chat/completions', '/v1%2Fchat%2Fcompletions', '/v1/x/../chat/completions?a=b']) expect(selects(selector, decision, path), path).toBe(true);
    expect(selects(selector, decision, '/v1/embeddings')).toBe(false);
  });

  it('refuses a policy whose headers-only prefix could hide a path', () => {
    const load = (prefix: string) => () => loadPolicyText(`apiVersion: genops.ai/v1alpha1\nkind: GovernancePolicy\nmetadata: { name: p }\nspec:\n  teams: { a: { models: ["*"] } }\n  usage:\n    headersOnly:\n      - { prefix: "${prefix}" }\n`, 'p.yaml');
    expect(load('/v1/files')).not.toThrow();
    expect(load('v1/files')).toThrow(/p\.yaml:8:\d+.*headersOnly/);
    expect(load('/v1/../chat')).toThrow(/"\.\." segments/);
    expect(load('/v1/files%2fx')).toThrow(/encoded slash/);
  });
});
