package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secret "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"istio.io/istio/pkg/security"
)

const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// certificateAuthority issues workload certificates as Istio's CA does: the SPIFFE id
// spiffe://<trust domain>/ns/<namespace>/sa/<service account> as the only URI SAN.
type certificateAuthority struct {
	trustDomain string
	cert        *x509.Certificate
	certPEM     []byte
	key         crypto.Signer

	mu     sync.Mutex
	issued map[string]*tls.TlsCertificate
}

func loadCertificateAuthority(certPath, keyPath, trustDomain string) (*certificateAuthority, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, err
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(keyBlock.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(keyBlock.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(keyBlock.Bytes); err != nil {
				return nil, fmt.Errorf("%s: unsupported private key", keyPath)
			}
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key cannot sign", keyPath)
	}
	return &certificateAuthority{trustDomain: trustDomain, cert: cert, certPEM: certPEM, key: signer, issued: map[string]*tls.TlsCertificate{}}, nil
}

func (ca *certificateAuthority) workloadCertificate(namespace, serviceAccount string) (*tls.TlsCertificate, error) {
	id := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", ca.trustDomain, namespace, serviceAccount)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if issued, ok := ca.issued[id]; ok {
		return issued, nil
	}
	spiffe, err := url.Parse(id)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{ca.trustDomain}},
		URIs:         []*url.URL{spiffe},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.certPEM...)
	issued := &tls.TlsCertificate{
		CertificateChain: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: chain}},
		PrivateKey:       &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}},
	}
	ca.issued[id] = issued
	logf("issued %s", id)
	return issued, nil
}

// secretDiscovery answers Envoy's SDS streams for the two secrets Istio's generated config
// names: "default" (the proxy's own certificate, identity from its node metadata) and
// "ROOTCA" (the CA to validate peers with).
type secretDiscovery struct {
	secret.UnimplementedSecretDiscoveryServiceServer
	ca *certificateAuthority
}

func registerSecretDiscovery(server *grpc.Server, ca *certificateAuthority) {
	secret.RegisterSecretDiscoveryServiceServer(server, &secretDiscovery{ca: ca})
}

func (s *secretDiscovery) StreamSecrets(stream secret.SecretDiscoveryService_StreamSecretsServer) error {
	var node *core.Node
	version := 0
	for {
		request, err := stream.Recv()
		if err != nil {
			return nil
		}
		if request.Node != nil {
			node = request.Node
		}
		if request.ErrorDetail != nil {
			logf("SDS NACK from %s: %s", node.GetId(), request.ErrorDetail.GetMessage())
			continue
		}
		if request.ResponseNonce != "" {
			continue // an ACK: secrets do not change during a run
		}
		resources := make([]*anypb.Any, 0, len(request.ResourceNames))
		for _, name := range request.ResourceNames {
			built, err := s.secret(name, node)
			if err != nil {
				logf("SDS %s for %s: %v", name, node.GetId(), err)
				return err
			}
			resource, err := anypb.New(built)
			if err != nil {
				return err
			}
			resources = append(resources, resource)
		}
		version++
		if err := stream.Send(&discovery.DiscoveryResponse{
			VersionInfo: fmt.Sprint(version),
			Resources:   resources,
			TypeUrl:     secretType,
			Nonce:       fmt.Sprint(version),
		}); err != nil {
			return nil
		}
	}
}

func (s *secretDiscovery) secret(name string, node *core.Node) (*tls.Secret, error) {
	switch name {
	case security.RootCertReqResourceName:
		return &tls.Secret{Name: name, Type: &tls.Secret_ValidationContext{ValidationContext: &tls.CertificateValidationContext{
			TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: s.ca.certPEM}},
		}}}, nil
	case security.WorkloadKeyCertResourceName:
		fields := node.GetMetadata().GetFields()
		namespace, serviceAccount := fields["NAMESPACE"].GetStringValue(), fields["SERVICE_ACCOUNT"].GetStringValue()
		if namespace == "" || serviceAccount == "" {
			return nil, fmt.Errorf("node metadata needs NAMESPACE and SERVICE_ACCOUNT")
		}
		certificate, err := s.ca.workloadCertificate(namespace, serviceAccount)
		if err != nil {
			return nil, err
		}
		return &tls.Secret{Name: name, Type: &tls.Secret_TlsCertificate{TlsCertificate: certificate}}, nil
	default:
		return nil, fmt.Errorf("unknown secret (only %q and %q)", security.WorkloadKeyCertResourceName, security.RootCertReqResourceName)
	}
}
