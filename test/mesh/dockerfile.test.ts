/**
 * No Docker engine runs here, so the image is checked the closest way that
 * does: the Dockerfile's shape, and the service started from exactly the files
 * its runtime stage copies (with only the .dockerignore'd context).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, httpRequest, REPO_ROOT, startService } from '../support/index.js';
import { spawnManaged, waitUntilReady } from '../../src/demo/managed-process.js';
import { SERVICE_NODE_FLAGS } from '../../src/server/service-node-flags.js';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const stages = dockerfile.split(/^FROM /m).slice(1);
const runtime = stages.at(-1)!;
const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)?.[1] ?? '[]') as string[];

describe('Dockerfile', () => {
  it('builds on the current Node LTS in two stages, production dependencies only, no install scripts', () => {
    expect(stages).toHaveLength(2);
    for (const stage of stages) expect(stage).toMatch(/^node:24-bookworm-slim AS /);
    expect(runtime).toMatch(/npm ci --omit=dev[^\n]*--ignore-scripts/);
  });

  it('runs as a numeric non-root user (Kubernetes runAsNonRoot can verify it) and exposes the ports', () => {
    expect(runtime).toMatch(/^USER 1000:1000$/m);
    expect(runtime).toMatch(/^EXPOSE 9001 9002 9464$/m);
    expect(readFileSync(join(REPO_ROOT, 'deploy/kubernetes/base/deployment.yaml'), 'utf8')).toContain('runAsUser: 1000');
  });

  it('starts node with the shipped flags (SERVICE_NODE_FLAGS), exactly as npm start does', () => {
    expect(SERVICE_NODE_FLAGS.length).toBeGreaterThan(0);
    expect(entrypoint).toEqual(['node', ...SERVICE_NODE_FLAGS, 'dist/main.js']);
    const scripts = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    expect(scripts.start!.split(/\s+/)).toEqual(['node', ...SERVICE_NODE_FLAGS, 'dist/main.js']);
  });

  it('is what the tests, the demo and the bench run: the harness starts the service with the same flags', async () => {
    const service = await startService();
    try {
      const argv = readFileSync(`/proc/${service.process.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      expect(argv.slice(1, 1 + SERVICE_NODE_FLAGS.length)).toEqual([...SERVICE_NODE_FLAGS]);
      expect(argv.at(-1)).toMatch(/dist\/main\.js$/);
    } finally {
      await service.stop();
    }
  });

  it('keeps bulky and secret-prone paths out of the build context', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const path of ['node_modules', 'dist', '.git', '.tools', 'test']) expect(ignored).toContain(path);
  });

  it('starts the service from exactly the files the runtime stage copies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'genops-image-'));
    try {
      for (const match of runtime.matchAll(/^COPY (?!--from)(.+)$/gm)) {
        const parts = match[1]!.trim().split(/\s+/);
        const target = parts.pop()!.replace(/^\.\//, '');
        for (const source of parts) {
          expect(existsSync(join(REPO_ROOT, source)), `COPY source ${source}`).toBe(true);
          const destination = target.endsWith('/') || parts.length > 1 ? join(dir, target, source.split('/').pop()!) : join(dir, target);
          cpSync(join(REPO_ROOT, source), destination === dir ? join(dir, source) : destination, { recursive: true });
        }
      }
      // COPY --from=build /app/dist ./dist: the compiled service; node_modules stands in for `npm ci --omit=dev`.
      cpSync(join(REPO_ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
      expect(existsSync(join(dir, 'deploy/default-policy.yaml'))).toBe(true);

      const [grpcPort, adminPort] = [await freePort(), await freePort()];
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE_ENV: 'production', GENOPS_LISTEN_HOST: '127.0.0.1', GENOPS_GRPC_PORT: String(grpcPort), GENOPS_ADMIN_PORT: String(adminPort), OTEL_SDK_DISABLED: 'true' };
      const [, ...args] = entrypoint;
      const child = spawnManaged('image', process.execPath, args, env, { cwd: dir });
      try {
        await waitUntilReady(child, `http://127.0.0.1:${adminPort}/readyz`, 15_000);
        expect((await httpRequest(`http://127.0.0.1:${adminPort}/metrics`)).body).toContain('genops_requests_total');
        expect(child.stdoutLines.join('\n')).toContain(dirname(join(dir, 'deploy/default-policy.yaml')));
      } finally {
        expect(await child.stop()).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
