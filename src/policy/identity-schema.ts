/**
 * `spec.identity`: how the governance context is bound to verified identity —
 * the JWT payload Envoy's jwt_authn filter verified, and the caller's mTLS
 * peer identity. Part of the policy schema (policy-schema.ts).
 */
import { z } from 'zod';

/** Context fields a claim can give (the model comes from the request, never from an identity). */
export const IDENTITY_FIELDS = ['team', 'customerId', 'project', 'costCenter', 'customerTier', 'environment', 'feature'] as const;

export const BINDING_MODES = ['fill', 'must-match', 'claim-wins'] as const;

const mode = z.enum(['enforce', 'dry-run']).describe('enforce: refuse what the rule forbids. dry-run: decide, log and count, never refuse.');
const bindingMode = z
  .enum(BINDING_MODES)
  .describe('fill: the claim fills the field when its header is absent (a header sent wins). must-match: a header sent must equal the claim (or one of its values), an absent one is filled from it; a request without an identity is refused. claim-wins: the claim replaces whatever header was sent; a request without an identity is refused.');
const claimPath = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .describe('Claim name; "a.b" reads a nested claim (a top-level claim whose name contains dots, e.g. "https://example.com/team", is matched first); a list of names gives the path one segment each.');

const claimBindingSchema = z.strictObject({
  claim: claimPath,
  mode: bindingMode.default('must-match'),
  prefix: z
    .string()
    .min(1)
    .optional()
    .describe('For list claims such as groups: only values starting with this prefix count, the prefix removed (e.g. "team:" turns "team:ml-platform" into ml-platform).'),
});

const requiredSchema = z
  .union([
    z.boolean(),
    z.strictObject({ paths: z.array(z.string().startsWith('/')).min(1).describe('Path prefixes where a request must carry a verified identity.') }),
  ])
  .describe('Whether every request (true) or every request on these paths must carry a verified JWT identity; without one it is refused with 401. Fields bound must-match or claim-wins need an identity on every path regardless.');

const jwtSchema = z
  .strictObject({
    metadataKey: z
      .string()
      .min(1)
      .optional()
      .describe('The key jwt_authn writes the verified payload under (payload_in_metadata) in the dynamic-metadata namespace envoy.filters.http.jwt_authn; default jwt_payload unless only payloadHeader is named. On ext_authz and ext_proc, which carry the metadata, it is the only source: no metadata is no token, never a reason to read a header.'),
    payloadHeader: z
      .string()
      .regex(/^[a-z0-9-]+$/, 'must be a lowercase header name')
      .optional()
      .describe('The payload as a header (base64url JSON, as jwt_authn forward_payload_header and Istio outputPayloadToHeader write it): read only on the adapters GENOPS_TRUST_PAYLOAD_HEADER names (their proxy removes client-sent copies before verifying), and there only when no metadataKey is named or the adapter carries no metadata (forward auth).'),
    issuers: z.array(z.string().min(1)).min(1).optional().describe('Accepted "iss" values; absent = any issuer Envoy verified.'),
    audiences: z.array(z.string().min(1)).min(1).optional().describe('The payload "aud" must contain one of these; absent = no audience rule.'),
  });

export const identitySchema = z
  .strictObject({
    jwt: jwtSchema.default({}),
    required: requiredSchema.default(false),
    claims: z.partialRecord(z.enum(IDENTITY_FIELDS), claimBindingSchema).default({}).describe('Which claim gives which governance field, and how a header relates to it.'),
    peer: z
      .strictObject({
        team: bindingMode.describe('Binds the team to the mTLS caller identity through each team\'s `principals`: fill takes the one team whose principals match the caller when no header names one; must-match refuses a team whose principals do not match the caller (a team without principals is refused); claim-wins uses the caller\'s team whatever the header says.'),
      })
      .optional()
      .describe('Binding of governance fields to the mTLS peer identity (the SPIFFE id Envoy reports).'),
    mode: mode.optional(),
  })
  .describe('Governance context bound to verified identity: JWT claims (Envoy jwt_authn) and the mTLS peer.');

export type IdentityPolicy = z.output<typeof identitySchema>;
export type IdentityField = (typeof IDENTITY_FIELDS)[number];
export type BindingMode = (typeof BINDING_MODES)[number];
