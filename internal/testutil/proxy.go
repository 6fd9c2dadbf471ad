package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Request is one request a proxy passed on, as the client sent it.
type Request struct {
	Method, Host, Path string
	// Region is the signing region in the Authorization header's
	// credential scope ("" when unsigned).
	Region string
}

// Proxy passes requests on to an S3 server unchanged (the Host header
// included, so SigV4 signatures stay valid) and records them.
type Proxy struct {
	// URL is where clients reach the proxy: the S3 endpoint of a TLS proxy,
	// or the HTTP_PROXY of a forward proxy.
	URL string
	// CAFile is the PEM file of the private CA that signed a TLS proxy's
	// certificate (for AWS_CA_BUNDLE); empty for a forward proxy.
	CAFile string

	mu   sync.Mutex
	reqs []Request
}

// Requests returns what the proxy has passed on so far.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.reqs...)
}

var scopeRegion = regexp.MustCompile(`Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request`)

func (p *Proxy) handler(target string) http.Handler {
	u, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host // signed: the server must see what the client signed
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := Request{Method: r.Method, Host: r.Host, Path: r.URL.Path}
		if m := scopeRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			req.Region = m[1]
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, req)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})
}

// StartTLSProxy starts an HTTPS reverse proxy on 127.0.0.1 in front of the
// S3 server at target (http://…), with a certificate for 127.0.0.1 and
// localhost signed by a private CA written to CAFile: what an on-premises
// S3 behind a TLS-terminating proxy looks like. It stops when the test ends.
func StartTLSProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	caCert, caKey := newCA(t)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "drym test S3"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{CAFile: filepath.Join(t.TempDir(), "drym-test-ca.pem")}
	if err := os.WriteFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p.handler(target))
	// Clients that do not trust the CA hang up in the handshake: tests
	// provoke that on purpose, so it is no news in the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leafKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "drym test private CA"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// StartForwardProxy starts a plain HTTP proxy (for HTTP_PROXY) that sends
// every request, whatever host it names, to the S3 server at target with
// its Host header unchanged. It stands in for DNS: a client configured with
// endpoint http://<VirtualDomain>:<port> and virtual-hosted addressing asks
// for <bucket>.<VirtualDomain>, a name nothing resolves, and reaches the
// server through the proxy as it would through a wildcard DNS record.
func StartForwardProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{}
	srv := httptest.NewServer(p.handler(target))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}
