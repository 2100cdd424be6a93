package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
)

// maxDecryptBatch bounds the ciphertexts sent in one batch decrypt.
const maxDecryptBatch = 128

// Batcher is a Client whose decrypts under one key coalesce into Transit's
// batch requests, like a group commit: while no decrypt under a key is in
// flight, a call is sent at once, alone, exactly as Client sends it (so a
// lone caller waits no longer than before); calls that arrive while one is
// in flight wait, and are sent together, up to maxDecryptBatch in one
// request, as soon as it returns. Each key (Transit names it in the path)
// has its own queue.
//
// Every caller gets what a Decrypt of its own would give: its plaintext,
// or for a ciphertext or associated data Transit refuses, that error for
// that caller only. A caller whose context ends returns at once, with the
// error Client gives then, and the others go on. A request that fails as
// a whole because Vault is unreachable, sealed or refuses the token fails
// every caller in it, and those waiting behind it, with that error. A
// plaintext nobody is left to take is zeroed; none is logged or kept.
//
// Only Decrypt (UnwrapKey, and the decrypt half of Rewrap) is batched;
// every other call is Client's. It is safe for concurrent use.
type Batcher struct {
	*Client
	mu     sync.Mutex
	queues map[string]*decryptQueue
}

// NewBatcher returns a Batcher sending through c.
func NewBatcher(c *Client) *Batcher {
	return &Batcher{Client: c, queues: map[string]*decryptQueue{}}
}

// decryptQueue is one key's state: whether a request is in flight, and
// the calls waiting for the next one.
type decryptQueue struct {
	busy    bool
	waiting []*decryptCall
}

// decryptCall is one waiting caller. The sender sets plaintext and err
// and closes ready, unless the caller has gone.
type decryptCall struct {
	ciphertext string
	ad         []byte

	mu        sync.Mutex
	gone      bool // the caller returned without a result
	delivered bool
	plaintext []byte
	err       error
	ready     chan struct{}
}

// deliver hands the result to the caller, or zeroes the plaintext when
// the caller has gone. It reports whether the caller took it.
func (d *decryptCall) deliver(pt []byte, err error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone || d.delivered {
		clear(pt)
		return false
	}
	d.plaintext, d.err, d.delivered = pt, err, true
	close(d.ready)
	return true
}

// leave marks the caller gone unless its result is already there; it
// reports whether it left.
func (d *decryptCall) leave() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.delivered {
		return false
	}
	d.gone = true
	return true
}

// take returns the delivered result and drops the call's hold on it, so
// the caller alone has the plaintext.
func (d *decryptCall) take() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pt := d.plaintext
	d.plaintext = nil
	return pt, d.err
}

func (d *decryptCall) waitingStill() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.gone && !d.delivered
}

// Decrypt is Client.Decrypt, batched with the concurrent decrypts under
// the same key (see Batcher).
func (b *Batcher) Decrypt(ctx context.Context, name, ciphertext string, associatedData []byte) ([]byte, error) {
	p, err := b.path("decrypt", name)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	q := b.queues[name]
	if q == nil {
		q = &decryptQueue{}
		b.queues[name] = q
	}
	if !q.busy {
		q.busy = true
		b.mu.Unlock()
		pt, err := b.Client.Decrypt(ctx, name, ciphertext, associatedData)
		if ctx.Err() != nil {
			// The caller's own end says nothing about Vault.
			b.next(name, q, nil)
		} else {
			b.next(name, q, err)
		}
		return pt, err
	}
	d := &decryptCall{ciphertext: ciphertext, ad: associatedData, ready: make(chan struct{})}
	q.waiting = append(q.waiting, d)
	b.mu.Unlock()
	select {
	case <-d.ready:
		return d.take()
	case <-ctx.Done():
		if !d.leave() {
			return d.take()
		}
		b.mu.Lock()
		if i := slices.Index(q.waiting, d); i >= 0 {
			q.waiting = slices.Delete(q.waiting, i, i+1)
		}
		b.mu.Unlock()
		return nil, classify(p, ctx.Err())
	}
}

// UnwrapKey makes Batcher a crypto.KeyWrapper whose unwraps are batched.
func (b *Batcher) UnwrapKey(ctx context.Context, name, ciphertext string, associatedData []byte) ([]byte, error) {
	return b.Decrypt(ctx, name, ciphertext, associatedData)
}

// Rewrap is Client.Rewrap with its decrypt batched.
func (b *Batcher) Rewrap(ctx context.Context, name, ciphertext string, associatedData []byte) (string, error) {
	if associatedData == nil {
		return b.Client.Rewrap(ctx, name, ciphertext, nil)
	}
	pt, err := b.Decrypt(ctx, name, ciphertext, associatedData)
	if err != nil {
		return "", err
	}
	defer clear(pt)
	return b.Encrypt(ctx, name, pt, associatedData)
}

// next is called when the request in flight for key name has returned
// with err (nil when it succeeded, or failed for its caller's reasons
// only). It sends the calls that waited meanwhile, or marks the key idle.
func (b *Batcher) next(name string, q *decryptQueue, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && failsEveryone(err) {
		// The request before theirs found Vault unusable: theirs would
		// go to the same Vault now, so they fail closed at once rather
		// than wait out another timeout.
		for _, d := range q.waiting {
			d.deliver(nil, err)
		}
		q.waiting = nil
	}
	var batch []*decryptCall
	for len(batch) == 0 && len(q.waiting) > 0 {
		n := min(len(q.waiting), maxDecryptBatch)
		for _, d := range q.waiting[:n] {
			if d.waitingStill() {
				batch = append(batch, d)
			}
		}
		q.waiting = slices.Delete(q.waiting, 0, n)
	}
	if len(batch) == 0 {
		q.busy = false
		q.waiting = nil
		delete(b.queues, name)
		return
	}
	go func() {
		b.next(name, q, b.send(name, batch))
	}()
}

// failsEveryone reports whether a request's error is about Vault or the
// token, not about what the request carried.
func failsEveryone(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrNotFound)
}

// send decrypts the calls of batch in one request and delivers each its
// result. The request belongs to none of the callers, so it runs under
// the client's own timeout, not a caller's context. It returns the error
// of a request that failed as a whole, which every call also got.
func (b *Batcher) send(name string, batch []*decryptCall) error {
	ctx := context.Background()
	if len(batch) == 1 {
		d := batch[0]
		pt, err := b.Client.Decrypt(ctx, name, d.ciphertext, d.ad)
		d.deliver(pt, err)
		return err
	}
	pts, errs, err := b.decryptBatch(ctx, name, batch)
	if err != nil && !failsEveryone(err) {
		// Not about Vault, and no answer per ciphertext: one of them may
		// have made the whole request fail (Transit keeps that to errors
		// it does not expect), so each is asked alone, and gets the
		// answer it would have had.
		for _, d := range batch {
			if d.waitingStill() {
				pt, err := b.Client.Decrypt(ctx, name, d.ciphertext, d.ad)
				d.deliver(pt, err)
			}
		}
		return nil
	}
	for i, d := range batch {
		switch {
		case err != nil:
			d.deliver(nil, err)
		case errs[i] != nil:
			d.deliver(nil, errs[i])
		default:
			d.deliver(pts[i], nil)
		}
	}
	return err
}

// batchResults is the part of Transit's batch decrypt answer dozo reads.
// Plaintexts decode straight into byte slices that can be zeroed.
type batchResults struct {
	Data struct {
		BatchResults []struct {
			Plaintext []byte `json:"plaintext"`
			Error     string `json:"error"`
		} `json:"batch_results"`
	} `json:"data"`
}

// decryptBatch sends one batch decrypt for batch and returns, for each
// call, its plaintext or the error Transit gave that ciphertext alone
// (worded as Client.Decrypt words it), or an error for the whole request.
func (b *Batcher) decryptBatch(ctx context.Context, name string, batch []*decryptCall) (pts [][]byte, errs []error, err error) {
	p, err := b.path("decrypt", name)
	if err != nil {
		return nil, nil, err
	}
	items := make([]map[string]any, len(batch))
	for i, d := range batch {
		items[i] = map[string]any{"ciphertext": d.ciphertext}
		if d.ad != nil {
			items[i]["associated_data"] = b64(d.ad)
		}
	}
	// Transit answers 400 when any item fails, and the API client then
	// keeps the body only as an error; asked for 200, it answers 400 only
	// when every item failed, or the request as a whole did.
	r := b.api.NewRequest(http.MethodPut, "/v1/"+p)
	if err := r.SetJSONBody(map[string]any{"batch_input": items, "partial_failure_response_code": http.StatusOK}); err != nil {
		return nil, nil, fmt.Errorf("vault %s: %w", p, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.conn.timeout)
	defer cancel()
	// The raw request, because it leaves the body readable until cancel:
	// Logical().Write keeps no body of a 400, and WriteRaw ends its
	// context before a 200's body is read.
	resp, rerr := b.api.RawRequestWithContext(ctx, r)
	var raw []byte
	if resp != nil {
		raw, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	defer clear(raw)
	var res batchResults
	if len(raw) > 0 && json.Unmarshal(raw, &res) == nil && len(res.Data.BatchResults) > 0 {
		if len(res.Data.BatchResults) != len(batch) {
			for _, r := range res.Data.BatchResults {
				clear(r.Plaintext)
			}
			return nil, nil, fmt.Errorf("vault %s: batch decrypt answered %d results for %d ciphertexts", p, len(res.Data.BatchResults), len(batch))
		}
		pts, errs = make([][]byte, len(batch)), make([]error, len(batch))
		for i, r := range res.Data.BatchResults {
			if r.Error != "" {
				clear(r.Plaintext)
				errs[i] = fmt.Errorf("vault %s: HTTP %d: %s", p, http.StatusBadRequest, r.Error)
				continue
			}
			if len(r.Plaintext) == 0 {
				errs[i] = errors.New(`vault: response lacks "plaintext"`)
				continue
			}
			pts[i] = r.Plaintext
		}
		return pts, errs, nil
	}
	if rerr != nil {
		return nil, nil, classify(p, rerr)
	}
	return nil, nil, fmt.Errorf("vault %s: batch decrypt answer without results", p)
}
