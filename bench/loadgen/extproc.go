package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// extProcFloor answers every ext_proc message with a CONTINUE of its kind and
// nothing else (no reply in observability mode): the transport floor of an
// ext_proc exchange, what Envoy's gRPC hop costs without any work or Node.
type extProcFloor struct {
	extprocv3.UnimplementedExternalProcessorServer
	messages atomic.Int64
}

func (s *extProcFloor) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	// FULL_DUPLEX_STREAMED request bodies (the one-round-trip route) go upstream only as sent back.
	fullDuplex := false
	for {
		request, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		s.messages.Add(1)
		if config := request.GetProtocolConfig(); config != nil {
			fullDuplex = config.GetRequestBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
		}
		if request.GetObservabilityMode() {
			// No reply; end the stream at the response's end (as genops-mesh does) rather than at Envoy's deferred close.
			if request.GetResponseBody().GetEndOfStream() || request.GetResponseHeaders().GetEndOfStream() {
				return nil
			}
			continue
		}
		response := &extprocv3.ProcessingResponse{}
		switch request.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			headers := &extprocv3.HeadersResponse{}
			if fullDuplex {
				// The one-round-trip route (deploy/envoy/ext-proc.yaml "undecided") lets a request go only once it is
				// marked decided and its route refreshed; a bare CONTINUE is routed to a cluster with no endpoint (503).
				headers.Response = &extprocv3.CommonResponse{
					HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
						Header:       &corev3.HeaderValue{Key: "x-genops-decision-id", RawValue: []byte("floor")},
						AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
					}}},
					ClearRouteCache: true,
				}
			}
			response.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: headers}
		case *extprocv3.ProcessingRequest_RequestBody:
			body := &extprocv3.BodyResponse{}
			if fullDuplex {
				chunk := request.GetRequestBody()
				body.Response = &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: chunk.GetBody(), EndOfStream: chunk.GetEndOfStream()}}}}
			}
			response.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: body}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			response.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			response.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			response.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			response.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}
		}
		if err := stream.Send(response); err != nil {
			return err
		}
	}
}

func runExtProc(args []string) {
	fs := flag.NewFlagSet("extproc", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	_ = fs.Parse(args)
	floor := &extProcFloor{}
	server := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(server, floor)
	serve(*listen, server.Serve, func() string { return fmt.Sprintf("messages=%d", floor.messages.Load()) })
}

// sseChunks is the streamed answer of the upstream on paths under /stream/: an
// OpenAI Chat Completions SSE stream of `chunks` content deltas, then the usage
// chunk (stream_options.include_usage) and [DONE].
func sseChunks(chunks int) []string {
	parts := make([]string, 0, chunks+2)
	for i := 0; i < chunks; i++ {
		parts = append(parts, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"claude-opus","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}`+"\n\n")
	}
	parts = append(parts, fmt.Sprintf(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"claude-opus","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", chunks, chunks+12))
	parts = append(parts, "data: [DONE]\n\n")
	return parts
}

func isStreamPath(path string) bool { return strings.HasPrefix(path, "/stream/") }
