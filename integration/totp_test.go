package integration

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// totp is the RFC 6238 code (SHA-1, 6 digits, 30 s steps) of a base32
// secret at time at.
func totp(secret string, at time.Time) string {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		return ""
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	o := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[o:o+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", code%1000000)
}

// otpSecret is the secret of an otpauth:// URL.
func otpSecret(t testing.TB, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Query().Get("secret") == "" {
		t.Fatalf("no secret in the TOTP URL (%v)", err)
	}
	return p.Query().Get("secret")
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
