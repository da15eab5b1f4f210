import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/index.js';

const TOOLS_BIN = join(REPO_ROOT, '.tools/bin');

function toolInBin(name: string, builtBy: string): string {
  const path = join(TOOLS_BIN, name);
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    throw new Error(`${path} not found: run \`npm run setup\` (${builtBy})`);
  }
}

/** .tools/bin/istioctl, built by scripts/setup.sh from the pinned istio.io/istio. Throws, never skips. */
export const findIstioctl = (): string => toolInBin('istioctl', 'go install istio.io/istio/istioctl/cmd/istioctl');

/** .tools/bin/istiod-harness, built by scripts/setup.sh from test/istio/istiod. Throws, never skips. */
export const findIstiodHarness = (): string => toolInBin('istiod-harness', 'go build ./test/istio/istiod');
