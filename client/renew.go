package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

// LoginWarnBefore is how long before a login that cannot be renewed runs
// out the user is told.
const LoginWarnBefore = 10 * time.Minute

// keeperStartTimeout bounds the look-up and renewal done before the work
// starts.
const keeperStartTimeout = 5 * time.Second

// KeeperOptions say how to reach Vault for the login token.
type KeeperOptions struct {
	VaultAddr   string
	VaultCACert string // PEM file; empty for the system roots
	Token       string
	// Notice prints one line to the user (the warning before a login that
	// cannot be renewed runs out).
	Notice func(format string, args ...any)
	// Debug, if set, is told why the login could not be looked up or renewed.
	Debug func(format string, args ...any)
}

// LoginKeeper keeps the login token alive while long work runs: it renews
// a renewable token (Vault's auth/token/renew-self) at half its TTL, and
// warns once before a token that cannot be renewed, or no further, runs
// out. It remembers when the token expires, so an expired login can be
// reported as such (Explain). It never prints or stores the token.
type LoginKeeper struct {
	o    KeeperOptions
	vc   *vault.Client
	stop context.CancelFunc
	done chan struct{}

	renewable bool          // worth renewing: Vault would extend it
	increment time.Duration // the TTL asked for at each renewal

	mu     sync.Mutex
	expiry time.Time // zero: unknown or never
}

// StartLoginKeeper looks the token up and keeps it alive until Stop. Any
// failure to reach Vault leaves the token as it is: renewal is a
// convenience, and dozod decides whether the token is still good.
func StartLoginKeeper(ctx context.Context, o KeeperOptions) *LoginKeeper {
	k := &LoginKeeper{o: o, done: make(chan struct{})}
	ctx, k.stop = context.WithCancel(ctx)
	if o.VaultAddr == "" || o.Token == "" {
		close(k.done)
		return k
	}
	vc, err := vault.New(vault.Config{Address: o.VaultAddr, CACert: o.VaultCACert, Token: o.Token, Timeout: 30 * time.Second})
	if err != nil {
		k.debug("login renewal off: %v", err)
		close(k.done)
		return k
	}
	k.vc = vc
	// The first look-up and renewal happen before the work starts, so a
	// warning comes first and the expiry is known from the start.
	// Briefly: a Vault out of reach must not hold up the work.
	sctx, cancel := context.WithTimeout(ctx, keeperStartTimeout)
	next := k.step(sctx, true)
	cancel()
	if next <= 0 {
		close(k.done)
		return k
	}
	go k.run(ctx, next)
	return k
}

// Stop ends the background renewal and waits for it.
func (k *LoginKeeper) Stop() {
	if k == nil {
		return
	}
	k.stop()
	<-k.done
}

// Expiry is when the token expires, as last learnt from Vault; zero when
// unknown or never.
func (k *LoginKeeper) Expiry() time.Time {
	if k == nil {
		return time.Time{}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.expiry
}

func (k *LoginKeeper) debug(format string, args ...any) {
	if k.o.Debug != nil {
		k.o.Debug(format, args...)
	}
}

// tokenState is what lookup-self says of the token.
type tokenState struct {
	ttl        time.Duration
	renewable  bool
	creationTT time.Duration
}

func (k *LoginKeeper) lookup(ctx context.Context) (tokenState, error) {
	s, err := k.vc.API().Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return tokenState{}, err
	}
	if s == nil || s.Data == nil {
		return tokenState{}, errors.New("empty answer")
	}
	var st tokenState
	st.ttl = secondsField(s.Data["ttl"])
	st.creationTT = secondsField(s.Data["creation_ttl"])
	st.renewable, _ = s.Data["renewable"].(bool)
	return st, nil
}

func secondsField(v any) time.Duration {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return time.Duration(i) * time.Second
	case float64:
		return time.Duration(n) * time.Second
	case int:
		return time.Duration(n) * time.Second
	}
	return 0
}

func (k *LoginKeeper) setExpiry(t time.Time) {
	k.mu.Lock()
	k.expiry = t
	k.mu.Unlock()
}

func (k *LoginKeeper) run(ctx context.Context, wait time.Duration) {
	defer close(k.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if wait = k.step(ctx, false); wait <= 0 {
			return
		}
	}
}

// step looks the token up (first) or renews it, and returns how long to
// wait before the next renewal; 0 when there is nothing more to do (the
// token never expires, cannot be renewed, or Vault cannot tell).
func (k *LoginKeeper) step(ctx context.Context, first bool) time.Duration {
	if first {
		st, err := k.lookup(ctx)
		if err != nil {
			k.debug("login renewal off: looking up the token: %v", err)
			return 0
		}
		if st.ttl <= 0 {
			return 0 // a token that never expires
		}
		k.setExpiry(time.Now().Add(st.ttl))
		k.renewable, k.increment = st.renewable, st.creationTT
	}
	if k.renewable {
		ttl, capped, err := k.renew(ctx, k.increment)
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			return 0 // the work is over
		case err != nil:
			k.debug("renewing the login: %v", err)
		default:
			k.setExpiry(time.Now().Add(ttl))
			k.renewable = !capped
		}
	}
	left := time.Until(k.Expiry())
	if left <= 0 {
		return 0
	}
	if !k.renewable {
		if left > LoginWarnBefore {
			return left - LoginWarnBefore
		}
		k.warn(left)
		return 0
	}
	return max(left/2, time.Second)
}

func (k *LoginKeeper) warn(left time.Duration) {
	if k.o.Notice != nil {
		k.o.Notice("your login expires at %s (in %s) and cannot be renewed; if it runs out first, run `dozo login` and rerun the same command to resume",
			k.Expiry().UTC().Format("15:04:05 UTC"), left.Round(time.Second))
	}
}

// renew asks Vault to extend the token by its original TTL. capped reports
// that Vault gave less: the token has reached its maximum lifetime.
func (k *LoginKeeper) renew(ctx context.Context, increment time.Duration) (ttl time.Duration, capped bool, err error) {
	s, err := k.vc.API().Auth().Token().RenewSelfWithContext(ctx, int(increment.Seconds()))
	if err != nil {
		return 0, false, err
	}
	if s == nil || s.Auth == nil {
		return 0, false, errors.New("empty answer")
	}
	ttl = time.Duration(s.Auth.LeaseDuration) * time.Second
	for _, w := range s.Warnings {
		if strings.Contains(w, "max_ttl") || strings.Contains(w, "capped") {
			capped = true
		}
	}
	if increment > 0 && ttl < increment {
		capped = true
	}
	return ttl, capped || !s.Auth.Renewable, nil
}

// Explain turns dozod's 401 after the login ran out into an
// *ExpiredLoginError, which says when and what to do; other errors are
// returned as they are.
func (k *LoginKeeper) Explain(err error) error {
	if err == nil || !IsStatus(err, http.StatusUnauthorized) {
		return err
	}
	exp := k.Expiry()
	if exp.IsZero() || time.Now().Before(exp) {
		return err
	}
	return &ExpiredLoginError{At: exp, Err: err}
}

// ExpiredLoginError is dozod refusing the login token because it ran out.
type ExpiredLoginError struct {
	At  time.Time
	Err error
}

func (e *ExpiredLoginError) Error() string {
	return fmt.Sprintf("your login expired at %s; run `dozo login` and rerun the same command to resume",
		e.At.UTC().Format("2006-01-02 15:04:05 UTC"))
}
func (e *ExpiredLoginError) Unwrap() error { return e.Err }
