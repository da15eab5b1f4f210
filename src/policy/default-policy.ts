import { fileURLToPath } from 'node:url';

/**
 * The embedded default policy ships as deploy/default-policy.yaml, one file for
 * the docs, the container image and the service. src/ and dist/ sit at the same
 * depth, so the same relative path works compiled or not.
 */
export const DEFAULT_POLICY_PATH = fileURLToPath(new URL('../../deploy/default-policy.yaml', import.meta.url));
