import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import { freePort, REPO_ROOT, renderEnvoyConfig } from '../../support/index.js';
import { spawnManaged, waitUntilReady, type ManagedProcess } from '../../../src/demo/managed-process.js';

export interface RunningNginx {
  /** http://127.0.0.1:LISTEN_PORT */
  readonly url: string;
  readonly process: ManagedProcess;
  /** The rendered snippet nginx runs. */
  readonly configPath: string;
  stop(): Promise<void>;
}

/**
 * The nginx binary: $NGINX_BIN, else /usr/sbin/nginx (Debian), else nginx on
 * PATH. Throws when there is none (`npm run setup` installs it): never skips.
 */
export function findNginx(): string {
  const candidates = [process.env.NGINX_BIN, '/usr/sbin/nginx', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'nginx'))];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error('nginx not found (tried $NGINX_BIN, /usr/sbin/nginx, PATH): install it with `npm run setup` (apt-get install nginx)');
}

/**
 * Renders an http{}-level nginx snippet with ${...} placeholders (the same
 * renderer as the Envoy configs) into a temporary prefix, wraps it in a
 * minimal foreground nginx.conf (one process, pid and temp files in the
 * prefix, errors to stderr) and starts the real nginx on it.
 */
export async function startNginx(options: { snippet: string; vars: Record<string, string | number> }): Promise<RunningNginx> {
  const nginx = findNginx();
  const snippetPath = isAbsolute(options.snippet) ? options.snippet : join(REPO_ROOT, options.snippet);
  const vars: Record<string, string | number> = { LISTEN_HOST: '127.0.0.1', ...options.vars };
  vars.LISTEN_PORT ??= await freePort();
  const readyPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'genops-nginx-'));
  const configPath = join(dir, basename(snippetPath));
  writeFileSync(configPath, renderEnvoyConfig(readFileSync(snippetPath, 'utf8'), vars, snippetPath));
  const main = join(dir, 'nginx.conf');
  writeFileSync(
    main,
    [
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      'error_log stderr warn;',
      'events { worker_connections 256; }',
      'http {',
      '    access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `    ${kind}_temp_path ${dir}/${kind}_temp;`),
      `    server { listen 127.0.0.1:${readyPort}; location = /ready { return 200 "ready\\n"; } }`,
      `    include ${configPath};`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawnManaged('nginx', nginx, ['-p', dir, '-e', 'stderr', '-c', main], process.env);
  const stop = async () => {
    try {
      await child.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await waitUntilReady(child, `http://127.0.0.1:${readyPort}/ready`, 10_000);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { url: `http://${vars.LISTEN_HOST}:${vars.LISTEN_PORT}`, process: child, configPath, stop };
}
