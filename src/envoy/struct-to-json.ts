/**
 * google.protobuf.Struct / Value, as protobufjs decodes them (camelCase
 * oneof members under the virtual `kind`) or as a test builds them by hand,
 * turned into plain JSON.
 */
export interface ProtoStruct {
  fields?: Record<string, ProtoValue | undefined> | undefined;
}

export interface ProtoValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct | null;
  listValue?: { values?: (ProtoValue | undefined)[] } | null;
}

const MEMBERS = ['stringValue', 'numberValue', 'boolValue', 'structValue', 'listValue', 'nullValue'] as const;
/** Deeper than any real JWT payload; bounds the work a hostile Struct can cause. */
const MAX_DEPTH = 32;

export function structToJson(struct: ProtoStruct | null | undefined, depth = 0): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const fields = struct?.fields;
  if (!fields || depth > MAX_DEPTH) return result;
  for (const key of Object.keys(fields)) result[key] = valueToJson(fields[key], depth + 1);
  return result;
}

function valueToJson(value: ProtoValue | undefined, depth: number): unknown {
  if (!value) return null;
  // protobufjs messages carry the set member's name in `kind`; hand-built ones only the member itself.
  const member = typeof value.kind === 'string' && (MEMBERS as readonly string[]).includes(value.kind) ? value.kind : MEMBERS.find((name) => Object.hasOwn(value, name));
  switch (member) {
    case 'stringValue':
      return value.stringValue;
    case 'numberValue':
      return value.numberValue;
    case 'boolValue':
      return value.boolValue;
    case 'structValue':
      return structToJson(value.structValue, depth);
    case 'listValue':
      return depth > MAX_DEPTH ? [] : (value.listValue?.values ?? []).map((entry) => valueToJson(entry, depth + 1));
    default:
      return null;
  }
}

/** The plain JSON of one dynamic-metadata namespace, or undefined when Envoy sent none. */
export function metadataNamespace(metadata: { filter_metadata?: Record<string, ProtoStruct | undefined> | null } | null | undefined, namespace: string): Record<string, unknown> | undefined {
  const struct = metadata?.filter_metadata?.[namespace];
  return struct ? structToJson(struct) : undefined;
}

/** The namespace Envoy's jwt_authn filter writes verified payloads to (payload_in_metadata). */
export const JWT_AUTHN_NAMESPACE = 'envoy.filters.http.jwt_authn';
