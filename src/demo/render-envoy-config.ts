/** `${NAME}` placeholders in the deploy/envoy configs (upper-case names only, as envsubst would see them). */
const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)\}/g;

export type EnvoyConfigVars = Readonly<Record<string, string | number>>;

/** The placeholder names a config template uses, in order of first appearance. */
export function placeholdersOf(template: string): string[] {
  return [...new Set(Array.from(template.matchAll(PLACEHOLDER), (match) => match[1] as string))];
}

/**
 * Fills the placeholders of an Envoy config template, like
 * `envsubst '${A} ${B}'` would. Every placeholder must have a value: a
 * missing one is an error naming it, never an empty string.
 */
export function renderEnvoyConfig(template: string, vars: EnvoyConfigVars, source = 'Envoy config'): string {
  const missing = placeholdersOf(template).filter((name) => vars[name] === undefined || vars[name] === '');
  if (missing.length > 0) {
    throw new Error(`${source}: no value for placeholder${missing.length > 1 ? 's' : ''} ${missing.map((name) => `\${${name}}`).join(', ')}`);
  }
  return template.replace(PLACEHOLDER, (_match, name: string) => String(vars[name]));
}
