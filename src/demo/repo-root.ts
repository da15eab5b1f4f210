import { fileURLToPath } from 'node:url';

/** The repository root: src/demo and dist/demo sit at the same depth below it. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The compiled service the harness and the demo spawn. */
export const SERVICE_ENTRY = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
