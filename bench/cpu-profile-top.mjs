// Top functions of a V8 .cpuprofile (node --cpu-prof) by self time, or by total time with --inclusive:
//   node bench/cpu-profile-top.mjs <file> [count] [--by-file | --inclusive]
import { readFileSync } from 'node:fs';

const [file, countArg, mode] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const count = Number(countArg ?? 40);
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parentOf = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
const keyOf = (node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, '$1');
  return mode === '--by-file' ? where || '(native)' : `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
};
const totals = new Map();
let total = 0;
for (let index = 0; index < profile.samples.length; index++) {
  const micros = profile.timeDeltas[index] ?? 0;
  total += micros;
  if (mode === '--inclusive') {
    // Each function on the sampled stack once (recursion counted once).
    const seen = new Set();
    for (let id = profile.samples[index]; id !== undefined; id = parentOf.get(id)) {
      const key = keyOf(byId.get(id));
      if (seen.has(key)) continue;
      seen.add(key);
      totals.set(key, (totals.get(key) ?? 0) + micros);
    }
  } else {
    const key = keyOf(byId.get(profile.samples[index]));
    totals.set(key, (totals.get(key) ?? 0) + micros);
  }
}
const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, count);
console.log(`total ${(total / 1e3).toFixed(0)} ms sampled`);
for (const [key, micros] of rows) console.log(`${((micros / total) * 100).toFixed(1).padStart(5)} %  ${(micros / 1e3).toFixed(0).padStart(6)} ms  ${key}`);
