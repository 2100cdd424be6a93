package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// The suite runs against one dozod on SQLite (the default) or, with
// DOZO_TEST_REPLICAS=2, against two dozods on one PostgreSQL catalog
// (scripts/dev.sh with DOZO_DEV_REPLICAS=2). DOZO_TEST_CATALOG=postgres
// asks for the same (the dev stack runs PostgreSQL only with replicas). In
// that mode the tests talk to both replicas through a round-robin proxy:
// each request goes to the next replica, so one transfer's calls land on
// both, and no test needs to know there are two.

// replicaMode reports the replica count the suite was asked for (1 or 2)
// and sets DOZO_DEV_REPLICAS for every scripts/dev.sh the tests run.
func replicaMode() (int, error) {
	n := os.Getenv("DOZO_TEST_REPLICAS")
	switch c := os.Getenv("DOZO_TEST_CATALOG"); c {
	case "":
	case "sqlite":
		if n == "2" {
			return 0, errors.New("DOZO_TEST_REPLICAS=2 runs on PostgreSQL; unset DOZO_TEST_CATALOG or set it to postgres")
		}
	case "postgres":
		if n == "" {
			n = "2"
		}
	default:
		return 0, fmt.Errorf("DOZO_TEST_CATALOG=%q: want sqlite or postgres", c)
	}
	switch n {
	case "", "1":
		return 1, nil
	case "2":
		return 2, os.Setenv("DOZO_DEV_REPLICAS", "2")
	}
	return 0, fmt.Errorf("DOZO_TEST_REPLICAS=%q: want 1 or 2 (2 runs on PostgreSQL)", n)
}

// roundRobin is a TLS reverse proxy on loopback in front of the replicas,
// with the dev stack's certificate: clients see one dozod. The Host header
// is kept (dozod's console checks it against the Origin), and no
// forwarding headers are added: dozod sees a loopback client, as before.
type roundRobin struct {
	URL      string
	backends []*url.URL
	next     atomic.Uint64
	served   []atomic.Int64
	srv      *http.Server
}

// startRoundRobin serves on a free loopback port until Close.
func startRoundRobin(brokers []string, certFile, keyFile string) (*roundRobin, error) {
	rr := &roundRobin{served: make([]atomic.Int64, len(brokers))}
	for _, b := range brokers {
		u, err := url.Parse(strings.TrimSpace(b))
		if err != nil {
			return nil, err
		}
		rr.backends = append(rr.backends, u)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", certFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr.MaxIdleConnsPerHost = 64
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := int((rr.next.Add(1) - 1) % uint64(len(rr.backends)))
			rr.served[i].Add(1)
			pr.SetURL(rr.backends[i])
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rr.URL = "https://" + l.Addr().String()
	rr.srv = &http.Server{Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: log.New(io.Discard, "", 0)}
	go rr.srv.ServeTLS(l, "", "")
	return rr, nil
}

// Served is how many requests went to each replica.
func (rr *roundRobin) Served() []int64 {
	out := make([]int64, len(rr.served))
	for i := range rr.served {
		out[i] = rr.served[i].Load()
	}
	return out
}

func (rr *roundRobin) Close() error { return rr.srv.Shutdown(context.Background()) }

// theProxy is the suite's round-robin proxy in the two-replica mode.
var theProxy *roundRobin

// spreadBrokers puts a round-robin proxy in front of the stack's dozods
// when DOZO_BROKER names several, and makes it the tests' DOZO_BROKER
// (the replicas stay in DOZO_DEV_BROKERS).
func (s *stack) spreadBrokers() error {
	brokers := strings.Split(s.env["DOZO_BROKER"], ",")
	if len(brokers) < 2 {
		return nil
	}
	rr, err := startRoundRobin(brokers, s.env["DOZO_CA_CERT"], filepath.Join(s.devDir, "tls", "key.pem"))
	if err != nil {
		return fmt.Errorf("round-robin proxy: %w", err)
	}
	theProxy = rr
	s.env["DOZO_DEV_BROKERS"] = s.env["DOZO_BROKER"]
	s.env["DOZO_BROKER"] = rr.URL
	return nil
}
