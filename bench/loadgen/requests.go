package main

import (
	"fmt"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Shape is what every request of a run carries: one governance context that
// the bench policy allows, plus the headers Envoy adds on its own. Only the
// customer id (and the trace and request ids) vary per request.
type Shape struct {
	Team       string
	Project    string
	Tier       string
	Model      string
	Env        string
	CostCenter string
	Feature    string
	// Customer ids are CustomerPrefix + a 7-digit number: request i uses
	// number i % Keys when Keys > 0, else always 1.
	CustomerPrefix string
	Keys           int
}

func defaultShape() Shape {
	return Shape{
		Team:           "ml-platform",
		Project:        "support-chatbot",
		Tier:           "premium",
		Model:          "claude-opus",
		Env:            "production",
		CostCenter:     "cc-4711",
		Feature:        "chat",
		CustomerPrefix: "cust-",
	}
}

const (
	benchPath = "/v1/chat/completions"
	// ChatBody is the body of every bench request: an OpenAI Chat Completions call, which
	// genops-mesh reads on an AI path (the model it names is the model governed).
	ChatBody       = `{"model":"claude-opus","messages":[{"role":"user","content":"Summarize the ticket, please."}]}`
	benchAuthority = "ai-gateway.bench.local"
)

func (s Shape) customerID(i int) string {
	n := 1
	if s.Keys > 0 {
		n = i % s.Keys
	}
	return fmt.Sprintf("%s%07d", s.CustomerPrefix, n)
}

// GovernanceHeaders are the x-genops-* headers of request i, plus a W3C
// traceparent (sampled) so the service's spans have a parent, as in a mesh.
func (s Shape) GovernanceHeaders(i int) map[string]string {
	return map[string]string{
		"x-genops-team":          s.Team,
		"x-genops-customer-id":   s.customerID(i),
		"x-genops-project":       s.Project,
		"x-genops-customer-tier": s.Tier,
		"x-genops-model":         s.Model,
		"x-genops-environment":   s.Env,
		"x-genops-cost-center":   s.CostCenter,
		"x-genops-feature":       s.Feature,
		"traceparent":            fmt.Sprintf("00-%016x%016x-%016x-01", uint64(0x6e6f7073)<<32|uint64(i>>32), uint64(i)+1, uint64(i)+1),
	}
}

type header struct{ key, value string }

var governanceHeaderOrder = []string{
	"x-genops-team", "x-genops-customer-id", "x-genops-project", "x-genops-customer-tier",
	"x-genops-model", "x-genops-environment", "x-genops-cost-center", "x-genops-feature", "traceparent",
}

// envoyHeaders are the request headers as Envoy hands them to its filters, in
// its order: pseudo-headers first, then the client's, then Envoy's own.
func (s Shape) envoyHeaders(i int) []header {
	governance := s.GovernanceHeaders(i)
	headers := []header{
		{":authority", benchAuthority},
		{":path", benchPath},
		{":method", "POST"},
		{":scheme", "http"},
		{"content-type", "application/json"},
		{"content-length", strconv.Itoa(len(ChatBody))},
		{"user-agent", "genops-bench/1.0"},
		{"accept", "*/*"},
	}
	for _, name := range governanceHeaderOrder {
		headers = append(headers, header{name, governance[name]})
	}
	return append(headers,
		header{"x-forwarded-proto", "http"},
		header{"x-request-id", fmt.Sprintf("6e6f7073-0000-4000-8000-%012x", i)},
	)
}

func headerRecord(headers []header) map[string]string {
	m := make(map[string]string, len(headers))
	for _, h := range headers {
		m[h.key] = h.value
	}
	return m
}

// CheckRequest is request i as Envoy's ext_authz filter sends it by default
// (the `headers` map; `header_map` only with encode_raw_headers).
func (s Shape) CheckRequest(i int) *authv3.CheckRequest {
	headers := headerRecord(s.envoyHeaders(i))
	return &authv3.CheckRequest{
		Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{
				Address: socketAddress("127.0.0.1", uint32(40000+i%20000)),
			},
			Destination: &authv3.AttributeContext_Peer{
				Address: socketAddress("127.0.0.1", 10000),
			},
			Request: &authv3.AttributeContext_Request{
				Time: timestamppb.Now(),
				Http: &authv3.AttributeContext_HttpRequest{
					Id:      headers["x-request-id"],
					Method:  "POST",
					Headers: headers,
					Path:    benchPath,
					// with_request_body, as deploy/envoy/ext-authz.yaml asks for on AI paths.
					Body:     ChatBody,
					Size:     int64(len(ChatBody)),
					Host:     benchAuthority,
					Scheme:   "http",
					Protocol: "HTTP/1.1",
				},
			},
			MetadataContext: &corev3.Metadata{},
		},
	}
}

// RequestHeaders is the first message of an ext_proc stream: the request
// headers as raw_value bytes, as Envoy sends them.
func (s Shape) RequestHeaders(i int) *extprocv3.ProcessingRequest {
	attributes, _ := structpb.NewStruct(map[string]any{})
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{
			RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(s.envoyHeaders(i))},
		},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": attributes},
	}
}

// RequestBody is the buffered request body, sent when the service asks for it
// (mode_override request_body_mode BUFFERED, as genops-mesh does on AI paths).
func RequestBody() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: []byte(ChatBody), EndOfStream: true},
		},
	}
}

// ResponseHeaders is the last message of an exchange: the upstream's response headers.
func ResponseHeaders() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap([]header{
				{":status", "200"},
				{"content-type", "application/json"},
				{"content-length", "231"},
				{"date", "Mon, 23 Nov 2026 10:00:00 GMT"},
				{"server", "envoy"},
			})},
		},
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func headerMap(headers []header) *corev3.HeaderMap {
	m := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(headers))}
	for _, h := range headers {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: h.key, RawValue: []byte(h.value)})
	}
	return m
}
