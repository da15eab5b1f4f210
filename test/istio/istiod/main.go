// Command istiod runs Istio's discovery server (the pinned istio.io/istio module) with no
// Kubernetes: configuration comes from YAML files, services and workloads from ServiceEntries
// and WorkloadEntries among them, and xDS is served in plaintext on a loopback port. It also
// plays the part of istio-agent's SDS server, issuing each proxy its SPIFFE certificate from a
// test CA, so the mTLS that istiod configures works with a stock Envoy. See README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"sigs.k8s.io/yaml"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
)

func main() {
	meshConfigPath := flag.String("mesh-config", "", "IstioOperator YAML whose spec.meshConfig istiod uses (deploy/istio/mesh-config.yaml)")
	var configDirs stringList
	flag.Var(&configDirs, "config-dir", "directory of Istio resource YAML, watched for edits (repeatable)")
	xdsAddr := flag.String("xds-addr", "127.0.0.1:0", "plaintext xDS (ADS) listen address")
	sdsAddr := flag.String("sds-addr", "127.0.0.1:0", "SDS listen address (workload certificates, as istio-agent serves them)")
	caCert := flag.String("ca-cert", "", "PEM CA certificate that signs workload certificates")
	caKey := flag.String("ca-key", "", "PEM private key of that CA")
	trustDomain := flag.String("trust-domain", "cluster.local", "SPIFFE trust domain of issued certificates")
	flag.Parse()
	if *meshConfigPath == "" || len(configDirs) == 0 || *caCert == "" || *caKey == "" {
		fail("usage: istiod --mesh-config FILE --config-dir DIR [--config-dir DIR...] --ca-cert FILE --ca-key FILE")
	}

	meshConfig, err := readMeshConfig(*meshConfigPath)
	if err != nil {
		fail("mesh config: %v", err)
	}
	configs, err := newConfigDirs(configDirs)
	if err != nil {
		fail("config: %v", err)
	}
	initial, err := configs.load()
	if err != nil {
		fail("config: %v", err)
	}
	ca, err := loadCertificateAuthority(*caCert, *caKey, *trustDomain)
	if err != nil {
		fail("CA: %v", err)
	}

	xdsListener, err := net.Listen("tcp", *xdsAddr)
	if err != nil {
		fail("xDS listener: %v", err)
	}
	sdsListener, err := net.Listen("tcp", *sdsAddr)
	if err != nil {
		fail("SDS listener: %v", err)
	}

	runner := &failer{}
	discovery := xds.NewFakeDiscoveryServer(runner, xds.FakeOptions{
		Configs:         initial,
		MeshConfig:      meshConfig,
		ListenerBuilder: func() (net.Listener, error) { return xdsListener, nil },
		// A short debounce, as istiod's (100 ms by default), so one edit yields one push.
		DebounceTime: 100 * time.Millisecond,
	})

	sdsServer := grpc.NewServer()
	registerSecretDiscovery(sdsServer, ca)
	go func() { _ = sdsServer.Serve(sdsListener) }()

	stopWatching := make(chan struct{})
	go configs.watch(discovery.Store(), 200*time.Millisecond, stopWatching)

	ready, _ := json.Marshal(map[string]string{"xds": xdsListener.Addr().String(), "sds": sdsListener.Addr().String()})
	fmt.Println(string(ready))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	close(stopWatching)
	sdsServer.Stop()
	runner.cleanup()
}

// readMeshConfig takes spec.meshConfig out of an IstioOperator (what `istioctl install -f`
// would hand to istiod) and applies Istio's defaults under it.
func readMeshConfig(path string) (*meshconfig.MeshConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var operator struct {
		Spec struct {
			MeshConfig map[string]any `json:"meshConfig"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &operator); err != nil {
		return nil, err
	}
	if operator.Spec.MeshConfig == nil {
		return nil, fmt.Errorf("%s has no spec.meshConfig", path)
	}
	meshYAML, err := yaml.Marshal(operator.Spec.MeshConfig)
	if err != nil {
		return nil, err
	}
	return mesh.ApplyMeshConfigDefaults(string(meshYAML))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "istiod: "+format+"\n", args...)
	os.Exit(1)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
