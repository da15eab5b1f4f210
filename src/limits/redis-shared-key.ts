import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis-connection.js';

/** Where the deployment's metering handoff key lives when GENOPS_METERING_HANDOFF_SECRET is not set. */
export const SHARED_HANDOFF_KEY = 'genops:metering:handoff-key';

/**
 * The key every replica sharing this Redis uses: the first replica to ask creates it (32 random
 * bytes, SET NX, no expiry), every other one reads the same. Whoever can write this Redis can
 * already rewrite the budget ledger itself, so a key kept next to it is no weaker than the ledger;
 * delete it and restart the replicas to rotate it. Rejects when Redis does not answer.
 */
export async function loadSharedKey(client: RedisClient, key = SHARED_HANDOFF_KEY): Promise<string> {
  await client.set(key, randomBytes(32).toString('base64url'), 'NX');
  const value = await client.get(key);
  if (!value) throw new Error(`${key} vanished between SET NX and GET`);
  return value;
}
