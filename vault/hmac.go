package vault

import (
	"context"
	"errors"
	"fmt"
)

// maxHMACBatch bounds the pairs sent in one verify request.
const maxHMACBatch = 500

// VerifyHMACs checks many (data, MAC) pairs under one key with Transit's
// batch_input, maxHMACBatch pairs per request: ok[i] reports pair i. A MAC
// Transit cannot parse or whose version it no longer accepts is reported
// as not matching; only a failed request is an error.
func (c *Client) VerifyHMACs(ctx context.Context, name string, data [][]byte, macs []string) ([]bool, error) {
	if len(data) != len(macs) {
		return nil, errors.New("vault: VerifyHMACs: data and macs differ in length")
	}
	p, err := c.path("verify", name)
	if err != nil {
		return nil, err
	}
	ok := make([]bool, 0, len(data))
	for start := 0; start < len(data); start += maxHMACBatch {
		end := min(start+maxHMACBatch, len(data))
		items := make([]map[string]any, 0, end-start)
		for i := start; i < end; i++ {
			items = append(items, map[string]any{"input": b64(data[i]), "hmac": macs[i]})
		}
		s, err := c.write(ctx, p+"/sha2-256", map[string]any{"batch_input": items})
		if err != nil {
			return nil, err
		}
		if s == nil || s.Data == nil {
			return nil, errors.New("vault: empty batch verify response")
		}
		res, _ := s.Data["batch_results"].([]any)
		if len(res) != end-start {
			return nil, fmt.Errorf("vault: batch verify answered %d results for %d inputs", len(res), end-start)
		}
		for _, r := range res {
			m, _ := r.(map[string]any)
			valid, _ := m["valid"].(bool)
			ok = append(ok, valid)
		}
	}
	return ok, nil
}
