// Command genops-loadgen is the load side of the genops-mesh bench harness
// (bench/run.ts drives it). It plays Envoy against the service with Envoy's
// own generated protos (go-control-plane), plays an HTTP client against
// Envoy, and stands in for the upstream and the OTLP collector:
//
//	genops-loadgen grpc     -addr H:P -kind check|process (-rate R | -concurrency C) -duration 10s
//	genops-loadgen http     -url http://H:P/v1/chat/completions (-rate R | -concurrency C) -duration 10s
//	genops-loadgen encode   -kind check|process -out FILE   (a gRPC-framed request body for h2load)
//	genops-loadgen upstream -listen 127.0.0.1:0              (a fixed 200 JSON answer)
//	genops-loadgen sink     -listen 127.0.0.1:0              (accepts any gRPC call: an OTLP sink)
//	genops-loadgen extproc  -listen 127.0.0.1:0              (ext_proc: CONTINUE to every message, the transport floor)
//
// Load runs print one JSON report on stdout and "progress done=N failed=N"
// lines on stderr once a second.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: genops-loadgen grpc|http|encode|upstream|sink [flags]"))
	}
	command, args := os.Args[1], os.Args[2:]
	switch command {
	case "grpc":
		runGrpc(args)
	case "http":
		runHTTP(args)
	case "encode":
		runEncode(args)
	case "upstream":
		runUpstream(args)
	case "sink":
		runSink(args)
	case "extproc":
		runExtProc(args)
	default:
		fail(fmt.Errorf("unknown command %q", command))
	}
}

type loadFlags struct {
	name        *string
	rate        *float64
	concurrency *int
	duration    *time.Duration
	warmup      *time.Duration
	requests    *int
	timeout     *time.Duration
	keys        *int
	prefix      *string
}

func addLoadFlags(fs *flag.FlagSet) loadFlags {
	return loadFlags{
		name:        fs.String("name", "", "scenario name for the report"),
		rate:        fs.Float64("rate", 0, "open loop: requests per second on a fixed schedule"),
		concurrency: fs.Int("concurrency", 0, "closed loop: requests in flight"),
		duration:    fs.Duration("duration", 10*time.Second, "measured time"),
		warmup:      fs.Duration("warmup", 2*time.Second, "unmeasured time before it, at the same load"),
		requests:    fs.Int("requests", 0, "closed loop: stop after this many requests (no warm-up)"),
		timeout:     fs.Duration("timeout", 5*time.Second, "deadline of one request or stream"),
		keys:        fs.Int("keys", 0, "distinct customer ids, request i uses i % keys (0: one customer)"),
		prefix:      fs.String("customer-prefix", "cust-", "customer id prefix"),
	}
}

func (f loadFlags) options() LoadOptions {
	if (*f.rate > 0) == (*f.concurrency > 0) {
		fail(errors.New("give exactly one of -rate (open loop) or -concurrency (closed loop)"))
	}
	o := LoadOptions{Name: *f.name, Rate: *f.rate, Concurrency: *f.concurrency, Duration: *f.duration, Warmup: *f.warmup, Requests: *f.requests, Timeout: *f.timeout}
	if o.Requests > 0 {
		o.Warmup = 0
	}
	return o
}

func (f loadFlags) shape() Shape {
	s := defaultShape()
	s.Keys = *f.keys
	s.CustomerPrefix = *f.prefix
	return s
}

func runGrpc(args []string) {
	fs := flag.NewFlagSet("grpc", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9001", "gRPC address of the service")
	kind := fs.String("kind", "check", "check (ext_authz) or process (headers-only ext_proc stream)")
	conns := fs.Int("conns", 1, "HTTP/2 connections, used round-robin")
	end := fs.String("end", "reset", "process: end each stream with a reset (as Envoy does) or a half-close awaiting the server's status")
	lf := addLoadFlags(fs)
	_ = fs.Parse(args)
	options := lf.options()
	shape := lf.shape()

	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fail(err)
		}
		conn.Connect()
		clients[i] = conn
	}
	var op Op
	switch *kind {
	case "check":
		authz := make([]authv3.AuthorizationClient, len(clients))
		for i, c := range clients {
			authz[i] = authv3.NewAuthorizationClient(c)
		}
		// One prebuilt request; with -keys, a pre-encoded template whose
		// fixed-width customer number is patched per request, so building
		// requests costs the generator (which shares the CPUs) next to nothing.
		fixed := shape.CheckRequest(0)
		template, offset := keyedTemplate(shape)
		op = func(ctx context.Context, i int) (Outcome, string) {
			var response *authv3.CheckResponse
			var err error
			if shape.Keys > 0 {
				request := append([]byte(nil), template...)
				copy(request[offset:offset+7], fmt.Sprintf("%07d", i%shape.Keys))
				var reply []byte
				err = clients[i%len(clients)].Invoke(ctx, "/envoy.service.auth.v3.Authorization/Check", &request, &reply, grpc.ForceCodecV2(rawCodec{}))
				if err == nil {
					response = &authv3.CheckResponse{}
					err = proto.Unmarshal(reply, response)
				}
			} else {
				response, err = authz[i%len(authz)].Check(ctx, fixed)
			}
			if err != nil {
				return Failed, "grpc_" + status.Code(err).String() + debugMsg(err)
			}
			if code := response.GetStatus().GetCode(); code != 0 {
				return Denied, fmt.Sprintf("http_%d", response.GetDeniedResponse().GetStatus().GetCode())
			}
			return OK, ""
		}
	case "process":
		extProc := make([]extprocv3.ExternalProcessorClient, len(clients))
		for i, c := range clients {
			extProc[i] = extprocv3.NewExternalProcessorClient(c)
		}
		fixed := shape.RequestHeaders(0)
		responseHeaders := ResponseHeaders()
		requestBody := RequestBody()
		op = func(ctx context.Context, i int) (Outcome, string) {
			request := fixed
			if shape.Keys > 0 {
				request = shape.RequestHeaders(i)
			}
			// Like Envoy: one reply per message, then the stream is reset.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := extProc[i%len(extProc)].Process(ctx)
			if err != nil {
				return Failed, "grpc_" + status.Code(err).String() + debugMsg(err)
			}
			if err := stream.Send(request); err != nil {
				return Failed, "send_" + status.Code(err).String()
			}
			first, err := stream.Recv()
			if err != nil {
				return Failed, "grpc_" + status.Code(err).String() + debugMsg(err)
			}
			if immediate := first.GetImmediateResponse(); immediate != nil {
				return Denied, fmt.Sprintf("http_%d", immediate.GetStatus().GetCode())
			}
			if first.GetRequestHeaders() == nil {
				return Failed, "out_of_order_reply"
			}
			// An AI path: the service asks for the buffered body and decides on it, as Envoy sends it.
			if first.GetModeOverride().GetRequestBodyMode() == extprocfilterv3.ProcessingMode_BUFFERED {
				if err := stream.Send(requestBody); err != nil {
					return Failed, "send_" + status.Code(err).String()
				}
				reply, err := stream.Recv()
				if err != nil {
					return Failed, "grpc_" + status.Code(err).String() + debugMsg(err)
				}
				if immediate := reply.GetImmediateResponse(); immediate != nil {
					return Denied, fmt.Sprintf("http_%d", immediate.GetStatus().GetCode())
				}
				if reply.GetRequestBody() == nil {
					return Failed, "out_of_order_reply"
				}
			}
			if err := stream.Send(responseHeaders); err != nil {
				return Failed, "send_" + status.Code(err).String()
			}
			second, err := stream.Recv()
			if err != nil {
				return Failed, "grpc_" + status.Code(err).String() + debugMsg(err)
			}
			if second.GetResponseHeaders() == nil {
				return Failed, "out_of_order_reply"
			}
			_ = stream.CloseSend()
			if *end == "halfclose" {
				if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
					return Failed, "no_clean_end"
				}
			}
			return OK, ""
		}
	default:
		fail(fmt.Errorf("unknown -kind %q", *kind))
	}
	report := Run(options, op)
	for _, c := range clients {
		_ = c.Close()
	}
	printReport(report)
}

func runHTTP(args []string) {
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	url := fs.String("url", "", "where to send POST requests (Envoy's listener)")
	lf := addLoadFlags(fs)
	_ = fs.Parse(args)
	options := lf.options()
	shape := lf.shape()
	if *url == "" {
		fail(errors.New("-url is required"))
	}
	transport := &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	client := &http.Client{Transport: transport}
	body := []byte(ChatBody)
	fixed := shape.GovernanceHeaders(0)
	op := func(ctx context.Context, i int) (Outcome, string) {
		request, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
		if err != nil {
			fail(err)
		}
		headers := fixed
		if shape.Keys > 0 {
			headers = shape.GovernanceHeaders(i)
		}
		request.Header.Set("content-type", "application/json")
		for k, v := range headers {
			request.Header[k] = []string{v}
		}
		response, err := client.Do(request)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return Failed, "timeout"
			}
			return Failed, "transport_error"
		}
		_, _ = io.Copy(io.Discard, response.Body)
		_ = response.Body.Close()
		switch {
		case response.StatusCode < 300:
			return OK, ""
		case response.StatusCode < 500:
			return Denied, fmt.Sprintf("http_%d", response.StatusCode)
		default:
			return Failed, fmt.Sprintf("http_%d", response.StatusCode)
		}
	}
	printReport(Run(options, op))
}

// runEncode writes a gRPC-framed request body (5-byte prefix per message),
// so h2load can send the exact bytes Envoy would.
func runEncode(args []string) {
	fs := flag.NewFlagSet("encode", flag.ExitOnError)
	kind := fs.String("kind", "check", "check or process")
	out := fs.String("out", "", "output file")
	_ = fs.Parse(args)
	shape := defaultShape()
	var messages []proto.Message
	switch *kind {
	case "check":
		messages = []proto.Message{shape.CheckRequest(0)}
	case "process":
		// The messages of an exchange on an AI path as Envoy sends them — request
		// headers, the buffered request body, the response headers — then
		// END_STREAM: the service answers each in order, then ends the stream.
		messages = []proto.Message{shape.RequestHeaders(0), RequestBody(), ResponseHeaders()}
	default:
		fail(fmt.Errorf("unknown -kind %q", *kind))
	}
	var buf bytes.Buffer
	for _, m := range messages {
		b, err := proto.Marshal(m)
		if err != nil {
			fail(err)
		}
		var prefix [5]byte
		binary.BigEndian.PutUint32(prefix[1:], uint32(len(b)))
		buf.Write(prefix[:])
		buf.Write(b)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fail(err)
	}
}

// upstreamBody is what an OpenAI-style provider answers, roughly.
var upstreamBody = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1795000000,"model":"claude-opus",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench upstream."},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`)

func runUpstream(args []string) {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	chunks := fs.Int("sse-chunks", 500, "content chunks of the SSE answer on paths under /stream/")
	_ = fs.Parse(args)
	var served atomic.Int64
	stream := sseChunks(*chunks)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		served.Add(1)
		h := w.Header()
		if isStreamPath(r.URL.Path) {
			// One write and flush per SSE event: each is its own chunk through Envoy.
			h["Content-Type"] = []string{"text/event-stream"}
			w.WriteHeader(http.StatusOK)
			flusher, _ := w.(http.Flusher)
			// ?gap_us=N paces the events as a provider generating tokens does (0: back to back).
			gap, _ := strconv.Atoi(r.URL.Query().Get("gap_us"))
			for i, part := range stream {
				if gap > 0 && i > 0 {
					time.Sleep(time.Duration(gap) * time.Microsecond)
				}
				_, _ = io.WriteString(w, part)
				if flusher != nil {
					flusher.Flush()
				}
			}
			return
		}
		h["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(upstreamBody)
	})
	serve(*listen, func(l net.Listener) error {
		return (&http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}).Serve(l)
	}, func() string { return fmt.Sprintf("served=%d", served.Load()) })
}

// runSink accepts every gRPC call (OTLP TraceService/Export among them)
// and answers with an empty message, which is a valid
// ExportTraceServiceResponse. Payloads are not decoded beyond framing.
func runSink(args []string) {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	_ = fs.Parse(args)
	var calls, bytesIn atomic.Int64
	server := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		for {
			var m emptypb.Empty
			if err := stream.RecvMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			calls.Add(1)
			bytesIn.Add(int64(len(m.ProtoReflect().GetUnknown())))
			if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
				return err
			}
		}
	}))
	serve(*listen, server.Serve, func() string { return fmt.Sprintf("calls=%d bytes=%d", calls.Load(), bytesIn.Load()) })
}

// serve listens, prints {"port":N} on stdout, serves until SIGTERM/SIGINT,
// then prints a last stats line on stderr.
func serve(listen string, run func(net.Listener) error, stats func() string) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fail(err)
	}
	fmt.Printf("{\"port\":%d}\n", l.Addr().(*net.TCPAddr).Port)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		fmt.Fprintln(os.Stderr, "stopping:", stats())
		os.Exit(0)
	}()
	if err := run(l); err != nil && !strings.Contains(err.Error(), "closed") {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genops-loadgen:", err)
	os.Exit(1)
}

func debugMsg(err error) string {
	if os.Getenv("LOADGEN_DEBUG") == "" {
		return ""
	}
	return ": " + status.Convert(err).Message()
}
