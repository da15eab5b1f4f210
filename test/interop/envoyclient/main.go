// Command envoyclient plays Envoy against a genops-mesh service: it sends
// ext_authz CheckRequests and ext_proc streams built from Envoy's own
// generated Go protos (go-control-plane), and prints every response as
// protojson, one JSON object per scenario per line, for test/interop.test.ts.
//
//	go run . -addr 127.0.0.1:9001 -scenarios ../scenarios.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// Scenario is one Check call or one ext_proc stream.
type Scenario struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "check" or "ext_proc"

	// check
	Principal    string            `json:"principal,omitempty"`
	Method       string            `json:"method,omitempty"`
	Path         string            `json:"path,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	RawHeaders   bool              `json:"rawHeaders,omitempty"`   // header_map with raw_value, as with encode_raw_headers: true
	Body         string            `json:"body,omitempty"`         // the request body, as with_request_body with pack_as_bytes sends it
	NoAttributes bool              `json:"noAttributes,omitempty"` // an empty CheckRequest

	// ext_proc: one message per step, each answered before the next is sent
	Steps []Step `json:"steps,omitempty"`
	// ext_proc: end by cancelling (a reset, as Envoy does) instead of a half-close
	Cancel bool `json:"cancel,omitempty"`
}

// Step is one ProcessingRequest.
type Step struct {
	Kind        string            `json:"kind"` // request_headers | response_headers | request_body | response_body
	Headers     map[string]string `json:"headers,omitempty"`
	Body        string            `json:"body,omitempty"`
	Principal   string            `json:"principal,omitempty"` // sent as the ext_proc attribute source.principal
	EndOfStream bool              `json:"endOfStream,omitempty"`
}

// Result is one line of output.
type Result struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Response  json.RawMessage   `json:"response,omitempty"`  // check: CheckResponse
	Responses []json.RawMessage `json:"responses,omitempty"` // ext_proc: one ProcessingResponse per step answered
	Error     *RPCError         `json:"error,omitempty"`     // a failed RPC or stream
	// Fields of a response that Envoy's protos do not know (wrong number or wire type): must stay empty.
	UnknownFields []string `json:"unknown_fields,omitempty"`
}

type RPCError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Proto field names, and scalars even when zero (status.code 0, CONTINUE, an empty value).
var marshal = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "genops-mesh gRPC address")
	file := flag.String("scenarios", "", "JSON file with an array of scenarios")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of each call or stream")
	flag.Parse()
	if *file == "" {
		fail(errors.New("-scenarios is required"))
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fail(err)
	}
	var scenarios []Scenario
	if err := json.Unmarshal(data, &scenarios); err != nil {
		fail(fmt.Errorf("%s: %w", *file, err))
	}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	authz := authv3.NewAuthorizationClient(conn)
	extProc := extprocv3.NewExternalProcessorClient(conn)

	out := json.NewEncoder(os.Stdout)
	for _, s := range scenarios {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		var result Result
		switch s.Kind {
		case "check":
			result = runCheck(ctx, authz, s)
		case "ext_proc":
			result = runExtProc(ctx, extProc, s)
		default:
			fail(fmt.Errorf("scenario %q: unknown kind %q", s.Name, s.Kind))
		}
		cancel()
		if err := out.Encode(result); err != nil {
			fail(err)
		}
	}
}

func runCheck(ctx context.Context, client authv3.AuthorizationClient, s Scenario) Result {
	result := Result{Name: s.Name, Kind: s.Kind}
	request := &authv3.CheckRequest{}
	if !s.NoAttributes {
		http := &authv3.AttributeContext_HttpRequest{
			Id:       "interop-" + s.Name,
			Method:   s.Method,
			Path:     s.Path,
			Host:     "llm.example.internal",
			Scheme:   "http",
			Protocol: "HTTP/1.1",
		}
		if s.Body != "" {
			http.RawBody = []byte(s.Body)
			http.Size = int64(len(s.Body))
		}
		// Envoy puts pseudo-headers in the checked headers too.
		headers := map[string]string{":method": s.Method, ":path": s.Path, ":authority": http.Host}
		for k, v := range s.Headers {
			headers[k] = v
		}
		if s.RawHeaders {
			http.HeaderMap = headerMap(headers)
		} else {
			http.Headers = headers
		}
		request.Attributes = &authv3.AttributeContext{
			Source:  &authv3.AttributeContext_Peer{Principal: s.Principal},
			Request: &authv3.AttributeContext_Request{Http: http},
		}
	}
	response, err := client.Check(ctx, request)
	if err != nil {
		result.Error = rpcError(err)
		return result
	}
	result.Response = toJSON(response)
	result.UnknownFields = unknownFields(response.ProtoReflect(), "CheckResponse")
	return result
}

func runExtProc(ctx context.Context, client extprocv3.ExternalProcessorClient, s Scenario) Result {
	result := Result{Name: s.Name, Kind: s.Kind}
	stream, err := client.Process(ctx)
	if err != nil {
		result.Error = rpcError(err)
		return result
	}
	for _, step := range s.Steps {
		request, err := processingRequest(step)
		if err != nil {
			fail(fmt.Errorf("scenario %q: %w", s.Name, err))
		}
		if err := stream.Send(request); err != nil {
			result.Error = rpcError(err)
			return result
		}
		response, err := stream.Recv()
		if err != nil {
			result.Error = rpcError(err)
			return result
		}
		result.Responses = append(result.Responses, toJSON(response))
		result.UnknownFields = append(result.UnknownFields, unknownFields(response.ProtoReflect(), "ProcessingResponse")...)
		if response.GetImmediateResponse() != nil {
			break // Envoy sends nothing more on this stream
		}
	}
	if s.Cancel {
		return result // the caller cancels the context: the stream is reset
	}
	// Half-close, then expect the server to end the stream cleanly.
	if err := stream.CloseSend(); err != nil {
		result.Error = rpcError(err)
		return result
	}
	if extra, err := stream.Recv(); err == nil {
		result.Error = &RPCError{Code: "Unexpected", Message: "reply after half-close: " + string(toJSON(extra))}
	} else if !errors.Is(err, io.EOF) {
		result.Error = rpcError(err)
	}
	return result
}

func processingRequest(step Step) (*extprocv3.ProcessingRequest, error) {
	request := &extprocv3.ProcessingRequest{}
	headers := &extprocv3.HttpHeaders{Headers: headerMap(step.Headers), EndOfStream: step.EndOfStream}
	body := &extprocv3.HttpBody{Body: []byte(step.Body), EndOfStream: step.EndOfStream}
	switch step.Kind {
	case "request_headers":
		request.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers}
	case "response_headers":
		request.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers}
	case "request_body":
		request.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: body}
	case "response_body":
		request.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: body}
	default:
		return nil, fmt.Errorf("unknown step kind %q", step.Kind)
	}
	if step.Principal != "" {
		// What the ext_proc filter sends with request_attributes: ["source.principal"].
		attrs, err := structpb.NewStruct(map[string]any{"source.principal": step.Principal})
		if err != nil {
			return nil, err
		}
		request.Attributes = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": attrs}
	}
	return request, nil
}

// headerMap encodes headers the way Envoy does for ext_proc: raw_value bytes, value empty.
func headerMap(headers map[string]string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for k, v := range headers {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return m
}

func toJSON(m proto.Message) json.RawMessage {
	b, err := marshal.Marshal(m)
	if err != nil {
		fail(err)
	}
	return b
}

// unknownFields lists where a decoded message kept bytes its schema has no field for.
// Go keeps a field with an unknown number, or a known number with the wrong wire type, as unknown.
func unknownFields(m protoreflect.Message, path string) []string {
	var found []string
	if len(m.GetUnknown()) > 0 {
		found = append(found, fmt.Sprintf("%s: %d unknown bytes", path, len(m.GetUnknown())))
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := path + "." + string(fd.Name())
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				found = append(found, unknownFields(mv.Message(), name+"["+k.String()+"]")...)
				return true
			})
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				found = append(found, unknownFields(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", name, i))...)
			}
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			found = append(found, unknownFields(v.Message(), name)...)
		}
		return true
	})
	return found
}

func rpcError(err error) *RPCError {
	s := status.Convert(err)
	return &RPCError{Code: s.Code().String(), Message: s.Message()}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "envoyclient:", err)
	os.Exit(1)
}
