package testutil

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// CountedRequest is one request a CountingProxy passed on.
type CountedRequest struct {
	Method string
	// Kind is what it was in S3 terms: LIST, GET, GET-RANGE, HEAD, PUT,
	// POST or DELETE.
	Kind string
	// Path is the unescaped URL path (path style: /bucket/key).
	Path  string
	Query string
}

// Key returns the object key (or the listed prefix) the request was about,
// for a path-style request to bucket.
func (r CountedRequest) Key(bucket string) string {
	k := strings.TrimPrefix(strings.TrimPrefix(r.Path, "/"+bucket), "/")
	if r.Kind == "LIST" {
		if q, err := url.ParseQuery(r.Query); err == nil {
			k = q.Get("prefix")
		}
	}
	return k
}

// CountingProxy is a reverse proxy in front of an S3 endpoint that records
// every request: tests count what a check asked the store, as a real
// client sends it. It keeps the Host header the client signed.
type CountingProxy struct {
	// URL is the endpoint to give the client instead of the target's.
	URL string

	mu        sync.Mutex
	reqs      []CountedRequest
	hang      chan struct{}
	ignoreINM bool
}

// StartCountingProxy proxies to target (an http:// endpoint) until the
// test ends.
func StartCountingProxy(t testing.TB, target string) *CountingProxy {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(to)
		pr.Out.Host = pr.In.Host
	}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CountingProxy{URL: "http://" + l.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, CountedRequest{Method: r.Method, Kind: kind(r), Path: r.URL.Path, Query: r.URL.RawQuery})
		hang, ignoreINM := p.hang, p.ignoreINM
		p.mu.Unlock()
		if hang != nil {
			select { // an endpoint that accepts and never answers
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		if ignoreINM && r.Header.Get("If-None-Match") != "" {
			if err := unconditional(r); err != nil {
				// Not an S3 answer: the test's own set-up is wrong.
				http.Error(w, "drym test proxy: "+err.Error(), http.StatusBadGateway)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() {
		p.Hang(false)
		srv.Close()
	})
	return p
}

func kind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Has("list-type"), r.Method == http.MethodGet && r.URL.Path != "" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
		return "LIST"
	case r.Method == http.MethodGet && r.Header.Get("Range") != "":
		return "GET-RANGE"
	}
	return r.Method
}

// Hang makes the proxy accept requests and never answer them (true) or
// answer again (false).
func (p *CountingProxy) Hang(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.hang == nil:
		p.hang = make(chan struct{})
	case !on && p.hang != nil:
		close(p.hang)
		p.hang = nil
	}
}

// IgnoreIfNoneMatch makes the proxy act as a server that ignores the
// If-None-Match header (true), or pass it on again (false); see
// unconditional.
func (p *CountingProxy) IgnoreIfNoneMatch(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ignoreINM = on
}

// Reset forgets the requests seen so far.
func (p *CountingProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

// Requests returns the requests seen since the start or the last Reset.
func (p *CountingProxy) Requests() []CountedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]CountedRequest(nil), p.reqs...)
}

// Count returns how many requests were seen, by Kind.
func (p *CountingProxy) Count() map[string]int {
	n := map[string]int{}
	for _, r := range p.Requests() {
		n[r.Kind]++
	}
	return n
}

// Total is the number of requests seen.
func (p *CountingProxy) Total() int { return len(p.Requests()) }
