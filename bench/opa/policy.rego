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

# Each governance header, trimmed ("" when absent or blank), lowercased where genops-mesh lowercases.
team := lower(trim_space(object.get(headers, "x-genops-team", "")))

customer_id := trim_space(object.get(headers, "x-genops-customer-id", ""))

project := trim_space(object.get(headers, "x-genops-project", ""))

cost_center := trim_space(object.get(headers, "x-genops-cost-center", ""))

customer_tier := lower(trim_space(object.get(headers, "x-genops-customer-tier", "")))

environment := lower(trim_space(object.get(headers, "x-genops-environment", "")))

feature := trim_space(object.get(headers, "x-genops-feature", ""))

model := lower(trim_space(object.get(headers, "x-genops-model", "")))

kebab := `^[a-z0-9]+(-[a-z0-9]+)*$`

label := `^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`

# A present value that is too long or breaks its pattern.
broken(value, max, _) if {
	value != ""
	count(value) > max
}

broken(value, _, pattern) if {
	value != ""
	not regex.match(pattern, value)
}

invalid if broken(team, 63, kebab)

invalid if broken(customer_id, 128, `^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$`)

invalid if broken(project, 128, label)

invalid if broken(cost_center, 64, label)

invalid if broken(customer_tier, 16, `^(premium|standard|basic)$`)

invalid if broken(environment, 32, kebab)

invalid if broken(feature, 128, label)

invalid if broken(model, 128, `^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$`)

# Required: team, customer id, project.
missing if team == ""

missing if customer_id == ""

missing if project == ""

teams := {
	"ml-platform": {"*"},
	"product-team": {"claude-haiku", "claude-sonnet"},
	"ml-research": {"claude-sonnet", "claude-haiku", "gpt-4o"},
	"data-science": {"claude-sonnet", "claude-haiku", "gpt-4o"},
}

model_allowed if "*" in teams[team]

model_allowed if model in teams[team]

denial := {"status": 400, "reason_code": "x_malformed_request"} if {
	not input.attributes.request.http
} else := {"status": 400, "reason_code": "x_invalid_context"} if {
	invalid
} else := {"status": 403, "reason_code": "x_missing_context"} if {
	missing
} else := {"status": 403, "reason_code": "x_team_not_allowed"} if {
	not teams[team]
} else := {"status": 403, "reason_code": "POLICY_DENY_MODEL"} if {
	model != ""
	not model_allowed
}

# Envoy's own request id (x-request-id) names the decision. uuid.rfc4122 would make a fresh one as
# genops-mesh does, but it reads crypto/rand on every call: under `opa eval --profile` here, a mean of
# 0.87 ms and a max of 30 ms per decision on a loaded host, a tail of its own that is not the policy's.
decision_id := object.get(input, ["attributes", "request", "http", "id"], "")

upstream_headers := {name: value |
	some name, value in {
		"x-genops-team": team,
		"x-genops-customer-id": customer_id,
		"x-genops-project": project,
		"x-genops-cost-center": cost_center,
		"x-genops-customer-tier": customer_tier,
		"x-genops-environment": environment,
		"x-genops-feature": feature,
		"x-genops-model": model,
	}
	value != ""
}

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
