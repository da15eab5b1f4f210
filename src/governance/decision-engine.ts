import { randomUUID } from 'node:crypto';
import type { CompiledPolicy, CompiledRoutes, CompiledTeam } from '../policy/compiled-policy.js';
import type { PolicyMode } from '../policy/policy-schema.js';
import { HEADER_OF_FIELD, extractGovernanceContext, type GovernanceContext, type HeaderLookup } from './governance-context.js';
import type { AiRequestFacts, Decision, ReasonCode } from './decision.js';
import { MODEL_RULE } from './governance-context.js';
import { createModelMatcher, type ModelMatcher } from '../usage/model-pattern.js';
import { modelsOf } from '../usage/request-body.js';
import { bindIdentity } from './identity-binding.js';
import { deferredTokenLimitViolation, responseRuleViolation } from './response-rules.js';
import { isFreeApi, type AiApi } from '../usage/ai-api.js';

/** What the engine needs to know about one request, free of any wire format. */
export interface DecisionInput {
  readonly headers: HeaderLookup;
  /** The mTLS peer's SPIFFE id, when Envoy knows it. */
  readonly principal?: string | undefined;
  readonly path?: string | undefined;
  /** Set by an adapter that could not make sense of the request at all. */
  readonly malformed?: string | undefined;
  /** On an AI API path: what the request body says, or why it could not be read. */
  readonly ai?: AiBodyInput | undefined;
  /** The `envoy.filters.http.jwt_authn` dynamic-metadata namespace (verified JWT payloads), as plain JSON. */
  readonly jwtMetadata?: Readonly<Record<string, unknown>> | undefined;
  /** The adapter's proxy strips client-sent copies of the JWT payload header (GENOPS_TRUST_PAYLOAD_HEADER); else it is never read. */
  readonly payloadHeaderTrusted?: boolean | undefined;
  /** The adapter carries no jwt_authn metadata at all (forward auth). */
  readonly withoutJwtMetadata?: boolean | undefined;
  /** Bytes of the request body (an upper bound of its prompt tokens, for budget reservations). */
  readonly bodyBytes?: number | undefined;
  /** True when the adapter sees the response and can settle a budget reservation (ext_proc). */
  readonly settles?: boolean | undefined;
  /** The request carries a body the service cannot read (request-class.ts): refused, deny by default. */
  readonly unknownAiApi?: string | undefined;
  /**
   * An AI API request whose body this adapter cannot see (forward auth): refused where a model
   * rule or a budget would need the body, else decided on headers.
   */
  readonly bodyUnseen?: {
    readonly api: string;
    readonly adapter: string;
    /** The model the path names (Gemini, Bedrock, an Azure deployment's): model rules can be checked without the body. */
    readonly model?: string | undefined;
  } | undefined;
  /** Reuse this decision id (a request decided again, e.g. with a budget's cheaper model). */
  readonly decisionId?: string | undefined;
}

export type AiBodyInput =
  | { readonly request: AiRequestFacts; readonly problem?: undefined }
  | { readonly request?: undefined; readonly problem: { readonly tooLarge: boolean; readonly message: string } };

export interface DecisionEngine {
  decide(input: DecisionInput): Decision;
}

export interface DecisionEngineOptions {
  readonly policy: () => CompiledPolicy;
  readonly newDecisionId?: () => string;
}

interface Violation {
  readonly reasonCode: ReasonCode;
  readonly message: string;
  readonly httpStatus: number;
  readonly mode: PolicyMode;
}

/**
 * crypto.randomUUID builds its string from some twenty pieces: a V8 cons string of ~530 bytes of heap
 * until something flattens it. A decision id outlives its request (the memory ledger remembers settled
 * reservation ids for up to a day, a million of them), so one flat copy (~110 bytes) is made at once;
 * toLowerCase makes it (the id is lowercase already, so its text does not change).
 */
function flatRandomUuid(): string {
  return randomUUID().toLowerCase();
}

/**
 * Evaluates the policy for one request. Rules run in a fixed order; the first
 * enforced violation decides. A violation of a dry-run rule is remembered and
 * evaluation goes on, so an enforced rule later can still deny; if none does,
 * the request passes as WARNING carrying the dry-run rule's reason code.
 */
export function createDecisionEngine(options: DecisionEngineOptions): DecisionEngine {
  const newDecisionId = options.newDecisionId ?? flatRandomUuid;

  function decide(input: DecisionInput): Decision {
    const policy = options.policy();
    const id = input.decisionId ?? newDecisionId();
    const extracted = extractGovernanceContext(input.headers);
    const bound = policy.identity ? bindIdentity(extracted, input, policy.identity, policy.teams) : undefined;
    const { context, problems } = bound ?? extracted;
    const principal = input.principal || undefined;
    const ai = input.ai?.request;
    let shadowed: Violation | undefined;

    const finish = (violation: Violation | undefined, route?: string): Decision => {
      const decision = settle(violation, route);
      return bound ? { ...decision, identity: bound.outcome } : decision;
    };
    const settle = (violation: Violation | undefined, route?: string): Decision => {
      if (violation && violation.mode === 'enforce') {
        return { id, result: 'BLOCKED', reasonCode: violation.reasonCode, message: violation.message, httpStatus: violation.httpStatus, dryRun: false, context, principal, route: undefined, policyName: policy.name, ai };
      }
      const warning = violation ?? shadowed;
      if (warning) {
        return { id, result: 'WARNING', reasonCode: warning.reasonCode, message: `dry-run: ${warning.message}`, httpStatus: warning.httpStatus, dryRun: true, context, principal, route, policyName: policy.name, ai };
      }
      return { id, result: 'ALLOWED', reasonCode: undefined, message: 'allowed', httpStatus: 200, dryRun: false, context, principal, route, policyName: policy.name, ai };
    };
    const check = (violation: Violation | undefined): Decision | undefined => {
      if (!violation) return undefined;
      if (violation.mode === 'enforce') return finish(violation);
      shadowed ??= violation;
      return undefined;
    };

    if (input.malformed) {
      return finish({ reasonCode: 'x_malformed_request', message: input.malformed, httpStatus: 400, mode: policy.mode });
    }
    if (input.unknownAiApi) {
      return finish({ reasonCode: 'x_unknown_ai_api', message: input.unknownAiApi, httpStatus: 403, mode: policy.mode });
    }
    // Every model the request names (a batch names several; an OpenAI Batch none it can show).
    const models = ai ? modelsOf(ai) : [];
    const bodyProblem = input.ai?.problem ?? models.map(modelProblemOf).find((found) => found !== undefined);
    if (bodyProblem) {
      const tooLarge = 'tooLarge' in bodyProblem && bodyProblem.tooLarge;
      return finish({ reasonCode: tooLarge ? 'x_body_too_large' : 'x_malformed_body', message: bodyProblem.message, httpStatus: tooLarge ? 413 : 400, mode: policy.mode });
    }
    if (bound?.violation) {
      const decidedByIdentity = check(bound.violation);
      if (decidedByIdentity) return decidedByIdentity;
    }

    const contextMode = policy.context.mode;
    const invalid = problems.length > 0
      ? { reasonCode: 'x_invalid_context' as const, message: problems.map((problem) => problem.message).join('; '), httpStatus: 400, mode: contextMode }
      : undefined;
    const invalidFields = new Set(problems.map((problem) => problem.field));
    const missing = policy.context.required.filter((field) => context[field] === undefined && !invalidFields.has(field));
    let decided =
      check(invalid) ??
      check(missing.length > 0
        ? { reasonCode: 'x_missing_context', message: `missing required header${missing.length > 1 ? 's' : ''} ${missing.map((field) => HEADER_OF_FIELD[field]).join(', ')}`, httpStatus: 403, mode: contextMode }
        : undefined);
    if (decided) return decided;

    // On an AI path the body's model is the model: a header may only repeat it (or name its family).
    if (ai) {
      const headerModel = context.model;
      for (const model of models) {
        const bodyModel = model.toLowerCase();
        if (headerModel !== undefined && headerModel !== bodyModel && !createModelMatcher([headerModel]).matches(bodyModel)) {
          return finish({ reasonCode: 'x_model_mismatch', message: `x-genops-model names ${headerModel} but the request ${ai.modelInPath ? 'path' : 'body'} asks for ${bodyModel}`, httpStatus: 400, mode: policy.mode });
        }
      }
      // A request whose models cannot be read has no model: a header cannot vouch for one.
      context.model = models.length > 0 ? ai.model.toLowerCase() : undefined;
    }

    if (input.bodyUnseen) {
      // The path's model, when it names one; else none: a header cannot vouch for the body it does not see.
      const pathModel = input.bodyUnseen.model?.toLowerCase();
      const headerModel = context.model;
      if (pathModel !== undefined && headerModel !== undefined && headerModel !== pathModel && !createModelMatcher([headerModel]).matches(pathModel)) {
        return finish({ reasonCode: 'x_model_mismatch', message: `x-genops-model names ${headerModel} but the request path asks for ${pathModel}`, httpStatus: 400, mode: policy.mode });
      }
      const problem = pathModel !== undefined ? modelProblemOf(pathModel) : undefined;
      if (problem) return finish({ reasonCode: 'x_malformed_body', message: problem.message.replace('request body field "model"', 'the model in the request path'), httpStatus: 400, mode: policy.mode });
      context.model = pathModel;
    }

    if (policy.principals && !(principal && policy.principals.allow.matches(principal))) {
      decided = check({ reasonCode: 'x_principal_not_allowed', message: principal ? `caller ${principal} is not allowed` : 'caller has no mTLS identity and the policy requires one', httpStatus: 403, mode: policy.principals.mode });
      if (decided) return decided;
    }

    // Deny by default: without a listed team there is no allow-list to grant access.
    if (context.team === undefined) {
      // An invalid team is no team: even when context rules are dry-run, there is no allow-list entry to grant access.
      if (invalidFields.has('team')) return finish({ ...invalid!, mode: policy.mode });
      return finish({ reasonCode: 'x_missing_context', message: 'missing required header x-genops-team', httpStatus: 403, mode: policy.mode });
    }
    const team = policy.teams.get(context.team);
    if (!team) {
      return finish({ reasonCode: 'x_team_not_allowed', message: `team ${context.team} is not allowed to call AI services`, httpStatus: 403, mode: policy.mode });
    }

    decided =
      check(team.principals && !(principal && team.principals.matches(principal))
        ? { reasonCode: 'x_principal_not_allowed', message: principal ? `caller ${principal} may not act for team ${team.name}` : `team ${team.name} requires an mTLS caller identity`, httpStatus: 403, mode: team.mode }
        : undefined) ??
      check(team.tiers && context.customerTier && !team.tiers.has(context.customerTier)
        ? { reasonCode: 'x_tier_not_allowed', message: `team ${team.name} may not serve ${context.customerTier} customers`, httpStatus: 403, mode: team.mode }
        : undefined) ??
      check(modelDenied(team.models, ai ? models : context.model !== undefined ? [context.model] : [], (model) => `team ${team.name} may not use model ${model}`, team.mode)) ??
      check(ai ? unreadableModels(ai, team.models, policy.usage.batches, `team ${team.name}`, team.mode) : undefined);
    if (decided) return decided;

    const tierRule = context.customerTier ? policy.tiers.get(context.customerTier) : undefined;
    if (tierRule) {
      decided =
        check(modelDenied(tierRule.models, ai ? models : context.model !== undefined ? [context.model] : [], (model) => `${context.customerTier} tier may not use model ${model}`, tierRule.mode)) ??
        check(ai ? unreadableModels(ai, tierRule.models, policy.usage.batches, `the ${context.customerTier} tier`, tierRule.mode) : undefined);
      if (decided) return decided;
    }

    if (input.bodyUnseen) {
      // The model is in the body: a header naming one proves nothing here.
      const needs = bodyNeededFor(input.bodyUnseen.model === undefined ? team : undefined, tierRule, finish(undefined));
      if (needs) {
        decided = check({ reasonCode: 'x_body_required', message: bodyRequiredMessage(input.bodyUnseen, needs.why), httpStatus: 403, mode: needs.mode });
        if (decided) return decided;
      }
    }

    // Budgets and token limits need the response: behind ext_authz and forward auth they refuse (or warn, dry-run);
    // behind ext_proc a call billed later (batch, background) cannot be charged to a token limit either.
    const api = ai?.api ?? (input.bodyUnseen?.api as AiApi | undefined);
    if (api !== undefined && !isFreeApi(api)) {
      const rule = { path: input.path, modelKnown: context.model !== undefined };
      const unkept = !input.settles
        ? responseRuleViolation(policy, finish(undefined), { ...rule, adapter: input.bodyUnseen?.adapter ?? 'ext_authz', batch: api === 'openai.batches' || api === 'anthropic.batches' })
        : ai?.deferred ? deferredTokenLimitViolation(policy, finish(undefined), { ...rule, deferred: ai.deferred }) : undefined;
      if (unkept) {
        decided = check({ reasonCode: input.settles ? 'x_unreservable_request' : 'x_ext_proc_required', message: unkept.message, httpStatus: 403, mode: unkept.mode });
        if (decided) return decided;
      }
    }

    return finish(undefined, chooseRoute(team.routes, context));
  }

  return { decide };
}

/** The first model of `models` the list does not allow. */
function modelDenied(allowed: ModelMatcher, models: readonly string[], message: (model: string) => string, mode: PolicyMode): Violation | undefined {
  const denied = models.find((model) => !allowed.matches(model.toLowerCase()));
  return denied === undefined ? undefined : { reasonCode: 'POLICY_DENY_MODEL', message: message(denied.toLowerCase()), httpStatus: 403, mode };
}

/** An OpenAI Batch names its models inside an uploaded file: only a rule that allows every model can pass it, or the policy's batches: allow. */
function unreadableModels(ai: AiRequestFacts, allowed: ModelMatcher, batches: 'refuse' | 'allow', who: string, mode: PolicyMode): Violation | undefined {
  if (modelsOf(ai).length > 0 || allowed.matchesAll || batches === 'allow') return undefined;
  return { reasonCode: 'x_unreadable_model', message: `${ai.api} names its models inside an uploaded file, which the service cannot read, and ${who} may use only some models (spec.usage.batches: allow admits it unchecked)`, httpStatus: 403, mode };
}

/** The body's model must be a model id the policy can match (the rule of x-genops-model). */
function modelProblemOf(model: string): { tooLarge: false; message: string } | undefined {
  const trimmed = model.trim();
  if (trimmed.length > MODEL_RULE.maxLength) return { tooLarge: false, message: `request body field "model" is longer than ${MODEL_RULE.maxLength} characters` };
  if (!MODEL_RULE.pattern.test(trimmed.toLowerCase())) return { tooLarge: false, message: `request body field "model" must be ${MODEL_RULE.expectation}` };
  return undefined;
}

/**
 * What would need the body: a model rule of the team or tier while the model is unknown (no team
 * given: the path named the model and the rules already checked it). Budgets and token limits need
 * the response as well: responseRuleViolation.
 */
function bodyNeededFor(team: CompiledTeam | undefined, tier: CompiledPolicy['tiers'] extends ReadonlyMap<unknown, infer T> ? T | undefined : never, decision: Decision): { why: string; mode: PolicyMode } | undefined {
  if (team && !team.models.matchesAll) return { why: `team ${team.name} may use only some models`, mode: team.mode };
  if (team && tier && !tier.models.matchesAll) return { why: `the ${decision.context.customerTier} tier may use only some models`, mode: tier.mode };
  return undefined;
}

function bodyRequiredMessage(unseen: { readonly api: string; readonly adapter: string }, why: string): string {
  return `${unseen.adapter} cannot see request bodies, and ${why}: the model of this ${unseen.api} request is in its body. Send AI API paths through Envoy's ext_proc (deploy/envoy/ext-proc.yaml; budgets and token limits need it) or ext_authz with_request_body (deploy/envoy/ext-authz.yaml)`;
}

function chooseRoute(routes: CompiledRoutes, context: GovernanceContext): string | undefined {
  return (context.customerTier && routes.byTier.get(context.customerTier)) || routes.default;
}
