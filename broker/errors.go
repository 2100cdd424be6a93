package broker

import (
	"errors"
	"net/http"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

// msgVaultUnavailable is the one answer, on every route, while Vault
// cannot be reached, is sealed or does not answer in time: 503 with these
// words, so a client knows to retry and an operator where to look.
const msgVaultUnavailable = "Vault is unavailable; try again later"

const hintVaultUnavailable = "dozod keeps no keys or identities of its own and refuses every request while Vault is unreachable; " +
	"operators: GET /v1/health shows Vault's state"

// vaultOutage reports whether err says that Vault could not be asked: not
// reachable, sealed, or silent past the timeout (vault.ErrUnavailable),
// also when it came through the identity provider.
func vaultOutage(err error) bool {
	return errors.Is(err, vault.ErrUnavailable) || errors.Is(err, ErrIdentityUnavailable)
}

// vaultUnavailable is the 503 for a Vault outage. The cause is logged,
// never sent.
func vaultUnavailable(cause error) *httpError {
	return &httpError{status: http.StatusServiceUnavailable, msg: msgVaultUnavailable, hint: hintVaultUnavailable, cause: cause, retryAfter: outageRetry}
}

// outageRetry is the Retry-After of a 503 for an outage of Vault or the
// catalog: about the health probe's interval, after which dozod knows
// whether it is over.
const outageRetry = 2 * time.Second

// catalogUnavailable is the 503 when the catalog cannot answer a question
// a request depends on: dozod fails closed and says so. The cause is
// logged, never sent.
func catalogUnavailable(cause error) *httpError {
	return &httpError{status: http.StatusServiceUnavailable, msg: "the catalog is unavailable; try again later", cause: cause, retryAfter: outageRetry}
}
