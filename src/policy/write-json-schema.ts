import { writeFileSync } from 'node:fs';
import { policyJsonSchema } from './policy-schema.js';

/** `npm run schema`: regenerates deploy/policy.schema.json from the policy schema. */
export function renderPolicyJsonSchema(): string {
  const schema = {
    $id: 'https://genops.ai/schemas/genops-mesh/policy.v1alpha1.json',
    title: 'genops-mesh GovernancePolicy',
    ...policyJsonSchema(),
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const target = process.argv[2];
  if (!target) {
    process.stderr.write('usage: write-json-schema <output.json>\n');
    process.exit(2);
  }
  writeFileSync(target, renderPolicyJsonSchema());
  process.stdout.write(`wrote ${target}\n`);
}
