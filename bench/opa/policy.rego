# The bench's peer policy for the OPA Envoy plugin (issue 15): what genops-mesh decides with
# bench/policy-peers.yaml, in Rego. Same rules in the same order, same status codes and reason
# codes; test/bench/opa-policy-equivalence.test.ts sends both the same CheckRequests and compares.
#
#   0. A CheckRequest without attributes.request.http → 400 x_malformed_request.
#   1. A governance header that is present but breaks its rule (too long, wrong shape) → 400
#      x_invalid_context (src/governance/governance-context.ts: trimmed, blank = absent, some
#      fields lowercased before the check).
#   2. A required header (team, customer id, project) absent → 403 x_missing_context.
#   3. A team the policy does not list → 403 x_team_not_allowed.
#   4. A model the team may not use → 403 POLICY_DENY_MODEL ("*" or the exact names; the peer
#      policy has no other patterns).
#   5. Otherwise allowed: the normalized context and a decision id go upstream, x-genops-route is
#      removed (the peer policy has no routes), as genops-mesh's CheckResponse does.
#
# Served by `opa-envoy-plugin run --server` with plugins.envoy_ext_authz_grpc.path=envoy/authz/result.
package envoy.authz

headers := object.get(input, ["attributes", "request", "http", "headers"], {})

rules := {
	"team": {"header": "x-genops-team", "max": 63, "lower": true, "pattern": `^[a-z0-9]+(-[a-z0-9]+)*$`},
	"customerId": {"header": "x-genops-customer-id", "max": 128, "lower": false, "pattern": `^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$`},
	"project": {"header": "x-genops-project", "max": 128, "lower": false, "pattern": `^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`},
	"costCenter": {"header": "x-genops-cost-center", "max": 64, "lower": false, "pattern": `^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`},
	"customerTier": {"header": "x-genops-customer-tier", "max": 16, "lower": true, "pattern": `^(premium|standard|basic)$`},
	"environment": {"header": "x-genops-environment", "max": 32, "lower": true, "pattern": `^[a-z0-9]+(-[a-z0-9]+)*$`},
	"feature": {"header": "x-genops-feature", "max": 128, "lower": false, "pattern": `^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`},
	"model": {"header": "x-genops-model", "max": 128, "lower": true, "pattern": `^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$`},
}

required := ["team", "customerId", "project"]

teams := {
	"ml-platform": ["*"],
	"product-team": ["claude-haiku", "claude-sonnet"],
	"ml-research": ["claude-sonnet", "claude-haiku", "gpt-4o"],
	"data-science": ["claude-sonnet", "claude-haiku", "gpt-4o"],
}

# Present, non-blank governance headers, trimmed.
present[field] := value if {
	some field, rule in rules
	value := trim_space(headers[rule.header])
	value != ""
}

normalized(rule, value) := lower(value) if rule.lower

normalized(rule, value) := value if not rule.lower

invalid contains field if {
	some field, value in present
	count(value) > rules[field].max
}

invalid contains field if {
	some field, value in present
	rule := rules[field]
	count(value) <= rule.max
	not regex.match(rule.pattern, normalized(rule, value))
}

context[field] := normalized(rules[field], value) if {
	some field, value in present
	not field in invalid
}

missing contains field if {
	some field in required
	not context[field]
	not field in invalid
}

model_allowed if "*" in teams[context.team]

model_allowed if context.model in teams[context.team]

denial := {"status": 400, "reason_code": "x_malformed_request"} if {
	not input.attributes.request.http
} else := {"status": 400, "reason_code": "x_invalid_context"} if {
	count(invalid) > 0
} else := {"status": 403, "reason_code": "x_missing_context"} if {
	count(missing) > 0
} else := {"status": 403, "reason_code": "x_missing_context"} if {
	not context.team
} else := {"status": 403, "reason_code": "x_team_not_allowed"} if {
	not teams[context.team]
} else := {"status": 403, "reason_code": "POLICY_DENY_MODEL"} if {
	context.model
	not model_allowed
}

decision_id := uuid.rfc4122("decision")

upstream_headers[rules[field].header] := value if some field, value in context

result := {
	"allowed": true,
	"headers": object.union(upstream_headers, {"x-genops-decision-id": decision_id}),
	"request_headers_to_remove": ["x-genops-route"],
	"response_headers_to_add": {"x-genops-decision-id": decision_id},
} if not denial

result := {
	"allowed": false,
	"http_status": denial.status,
	"headers": {"content-type": "application/json", "x-genops-decision-id": decision_id},
	"body": json.marshal({
		"error": error_name[denial.status],
		"reason_code": denial.reason_code,
		"decision_id": decision_id,
	}),
} if denial

error_name := {400: "bad_request", 403: "forbidden"}
