/**
 * The policy parser as a process of its own, run by isolated-policy-loader.ts: reads
 * `{ text, source }` as JSON on stdin and writes `{ document }` (the validated policy) or
 * `{ error: { code, message } }` as JSON on stdout. zod and yaml are loaded here, so the
 * serving process never holds them.
 */
import { isGenopsError } from '../errors/genops-error.js';
import { parsePolicy } from './load-policy.js';

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
const { text, source } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { text: string; source: string };
let reply: unknown;
try {
  reply = { document: parsePolicy(text, source) };
} catch (error) {
  reply = { error: isGenopsError(error) ? { code: error.code, message: error.message } : { code: 'internal', message: error instanceof Error ? (error.stack ?? error.message) : String(error) } };
}
process.stdout.write(JSON.stringify(reply));
