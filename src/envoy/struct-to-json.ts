/**
 * google.protobuf.Struct / Value, as protobufjs decodes them (camelCase
 * oneof members) or as a test builds them by hand, turned into plain JSON.
 */
export interface ProtoStruct {
  fields?: Record<string, ProtoValue | undefined> | undefined;
}

export interface ProtoValue {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct | null;
  listValue?: { values?: (ProtoValue | undefined)[] } | null;
}

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
  // The set member is the message's own property (protobufjs keeps defaults on the prototype);
  // cheaper than protobufjs's virtual `kind`, which walks every member.
  if (Object.hasOwn(value, 'stringValue')) return value.stringValue;
  if (Object.hasOwn(value, 'numberValue')) return value.numberValue;
  if (Object.hasOwn(value, 'boolValue')) return value.boolValue;
  if (Object.hasOwn(value, 'structValue')) return structToJson(value.structValue, depth);
  if (Object.hasOwn(value, 'listValue')) return depth > MAX_DEPTH ? [] : (value.listValue?.values ?? []).map((entry) => valueToJson(entry, depth + 1));
  return null;
}

/** The plain JSON of one dynamic-metadata namespace, or undefined when Envoy sent none. */
export function metadataNamespace(metadata: { filter_metadata?: Record<string, ProtoStruct | undefined> | null } | null | undefined, namespace: string): Record<string, unknown> | undefined {
  const struct = metadata?.filter_metadata?.[namespace];
  return struct ? structToJson(struct) : undefined;
}

/** The namespace Envoy's jwt_authn filter writes verified payloads to (payload_in_metadata). */
export const JWT_AUTHN_NAMESPACE = 'envoy.filters.http.jwt_authn';
