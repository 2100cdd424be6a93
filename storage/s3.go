package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/internal/loopback"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultPartSize is the multipart part size S3Target uses unless told
// otherwise. A piece up to this size goes in one PUT: 64 MiB covers the
// ~16 MiB pieces of the default layout (64 MiB segments, K=4) with room for
// larger segments. Larger pieces go in parts read straight from the piece
// buffer (an io.ReaderAt), so memory stays bounded either way.
const DefaultPartSize = 64 << 20

// minPartSize is S3's minimum part size (except for the last part).
const minPartSize = 5 << 20

// S3Config configures an S3Target.
type S3Config struct {
	ID, Domain string
	// Endpoint is the server's URL, scheme included (see ParseEndpoint):
	// https://host[:port], or http:// to a loopback address.
	Endpoint             string
	AccessKey, SecretKey string
	Bucket, Region       string
	// PartSize is the multipart part size; 0 means DefaultPartSize. It is
	// explicit so that memory use per upload is known.
	PartSize uint64
	// Transport, if set, replaces minio-go's default HTTP transport (e.g. to
	// add a CA or tune connection pools).
	Transport http.RoundTripper
	// MaxRetries bounds minio-go's retries of a failed request; 0 means
	// DefaultMaxRetries. Kept low: a piece has parity to fall back on, and
	// minio-go's own default (10) stalls a read for seconds per piece when
	// a server is down.
	MaxRetries int
}

// DefaultMaxRetries is S3Config.MaxRetries' default.
const DefaultMaxRetries = 2

// S3Target is a Target on one bucket of an S3-compatible server. It uses only
// the common S3 API (no MinIO admin calls) through minio-go.
type S3Target struct {
	cfg    S3Config
	client *minio.Client
	core   minio.Core
}

var _ Target = (*S3Target)(nil)

// ParseEndpoint checks an S3 endpoint URL and returns the host[:port]
// minio-go dials and whether it speaks TLS. The scheme must be written: a
// bare host:port once meant plain HTTP without saying so. https:// is
// required except to a loopback address (the rule dozod's own listener
// and its Vault address follow), because over plain HTTP every request,
// presigned URL and reply crosses the network readable and alterable.
// Only scheme://host[:port] is accepted: no path, query or user info.
func ParseEndpoint(endpoint string) (host string, secure bool, err error) {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	if !ok {
		return "", false, fmt.Errorf("endpoint %q has no scheme: write %q", endpoint, schemeFor(endpoint)+endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("endpoint %q: %v", endpoint, err)
	}
	if u.Host == "" || u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("endpoint %q: want scheme://host[:port] and nothing else", endpoint)
	}
	switch strings.ToLower(scheme) {
	case "https":
		return u.Host, true, nil
	case "http":
		if !loopback.Host(u.Hostname()) {
			return "", false, fmt.Errorf("endpoint %q: plain HTTP is allowed only to a loopback address; write %q",
				endpoint, "https://"+strings.TrimSuffix(rest, "/"))
		}
		return u.Host, false, nil
	}
	return "", false, fmt.Errorf("endpoint %q: scheme %q: want https:// (or http:// to a loopback address)", endpoint, scheme)
}

// schemeFor is the scheme a bare host[:port] should be given: http for a
// loopback address, https for anything else.
func schemeFor(hostport string) string {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	if loopback.Host(h) {
		return "http://"
	}
	return "https://"
}

// NewS3Target validates cfg and returns a target. It does not contact the
// server; see EnsureBucket.
func NewS3Target(cfg S3Config) (*S3Target, error) {
	if err := ValidateID(cfg.ID); err != nil {
		return nil, fmt.Errorf("storage: s3 target id: %w", err)
	}
	if err := ValidateID(cfg.Domain); err != nil {
		return nil, fmt.Errorf("storage: s3 target %s domain: %w", cfg.ID, err)
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("storage: s3 target %s: empty bucket", cfg.ID)
	}
	host, secure, err := ParseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("storage: s3 target %s: %w", cfg.ID, err)
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("storage: s3 target %s: part size %d below the S3 minimum %d", cfg.ID, cfg.PartSize, minPartSize)
	}
	client, err := minio.New(host, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     secure,
		Region:     cfg.Region,
		Transport:  cfg.Transport,
		MaxRetries: cmp.Or(cfg.MaxRetries, DefaultMaxRetries),
	})
	if err != nil {
		return nil, fmt.Errorf("storage: s3 target %s: %w", cfg.ID, err)
	}
	return &S3Target{cfg: cfg, client: client, core: minio.Core{Client: client}}, nil
}

// ID implements Target.
func (s *S3Target) ID() string { return s.cfg.ID }

// Domain implements Target.
func (s *S3Target) Domain() string { return s.cfg.Domain }

// Bucket returns the bucket name.
func (s *S3Target) Bucket() string { return s.cfg.Bucket }

// Client returns the underlying minio-go client.
func (s *S3Target) Client() *minio.Client { return s.client }

// ErrUnreachable is returned, wrapped, by S3Target when a request got no
// answer: no connection, a reset or timed-out one, a failed TLS handshake.
// That is a fact about the target. An error the server did answer with
// (a status and an S3 error code) is about the request or the object.
var ErrUnreachable = errors.New("storage: target did not answer")

func (s *S3Target) errorf(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket {
		return fmt.Errorf("%s %s on %s: %w (%v)", op, key, s.cfg.ID, ErrNotFound, err)
	}
	if resp.StatusCode == 0 && minio.IsNetworkOrHostDown(err, false) {
		return fmt.Errorf("%s %s on %s: %w: %w", op, key, s.cfg.ID, ErrUnreachable, err)
	}
	return fmt.Errorf("%s %s on %s: %w", op, key, s.cfg.ID, err)
}

// EnsureBucket creates the bucket if it does not exist. An error wrapping
// ErrUnreachable means the server did not answer (down, or not there yet);
// any other error is an answer: wrong credentials, a bad bucket name.
func (s *S3Target) EnsureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == 0 && minio.IsNetworkOrHostDown(err, false) {
			return fmt.Errorf("storage: s3 target %s: bucket %s: %w: %w", s.cfg.ID, s.cfg.Bucket, ErrUnreachable, err)
		}
		return fmt.Errorf("storage: s3 target %s: bucket %s: %w", s.cfg.ID, s.cfg.Bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return fmt.Errorf("storage: s3 target %s: creating bucket %s: %w", s.cfg.ID, s.cfg.Bucket, err)
	}
	return nil
}

// Put implements Target. S3 makes an object visible only when its PUT (or
// multipart completion) succeeds, so readers never see partial objects.
// Pass an io.ReaderAt+io.Seeker (e.g. *bytes.Reader) so failed requests can
// be retried; size must be known (>= 0).
func (s *S3Target) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		// minio-go would buffer unknown-length input in PartSize chunks;
		// every caller here knows the size, so refuse rather than hide that.
		return fmt.Errorf("put %s on %s: unknown size", key, s.cfg.ID)
	}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.cfg.PartSize,
	})
	if err != nil {
		return s.errorf("put", key, err)
	}
	return nil
}

// Get implements Target with a plain (ranged) GET.
func (s *S3Target) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s on %s: negative offset %d", key, s.cfg.ID, off)
	}
	if length == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	var err error
	switch {
	case length > 0:
		err = opts.SetRange(off, off+length-1)
	case off > 0:
		err = opts.SetRange(off, 0)
	}
	if err != nil {
		return nil, err
	}
	rc, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return nil, s.errorf("get", key, err)
	}
	return rc, nil
}

// Stat implements Target.
func (s *S3Target) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.errorf("stat", key, err)
	}
	return ObjectInfo{Key: oi.Key, Size: oi.Size, ETag: oi.ETag, ModTime: oi.LastModified}, nil
}

// Delete implements Target.
func (s *S3Target) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.errorf("delete", key, err), ErrNotFound) {
			return nil
		}
		return s.errorf("delete", key, err)
	}
	return nil
}

// List implements Target (lexical key order, as S3 lists).
func (s *S3Target) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine on early return
	for oi := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("list %q on %s: %w", prefix, s.cfg.ID, oi.Err)
		}
		if err := fn(ObjectInfo{Key: oi.Key, Size: oi.Size, ETag: oi.ETag, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// PresignGet returns a URL that allows a GET of key until expiry.
func (s *S3Target) PresignGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return s.client.PresignedGetObject(ctx, s.cfg.Bucket, key, expiry, nil)
}

// PresignPut returns a URL that allows a PUT of key until expiry.
func (s *S3Target) PresignPut(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return s.client.PresignedPutObject(ctx, s.cfg.Bucket, key, expiry)
}
