package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/transfer"
)

// TestUploadSummary: the result line gives the rate of the bytes this run
// sent, and says when a run resumed, including when nothing was left to
// send.
func TestUploadSummary(t *testing.T) {
	const mib = 1 << 20
	file := &api.File{Size: 500 * mib}
	for _, c := range []struct {
		res       transfer.UploadResult
		want, not []string
	}{
		{transfer.UploadResult{File: file, Segments: 16, Sent: 500 * mib, Elapsed: 2 * time.Second},
			[]string{"500.0 MiB in 2s, 250.0 MiB/s"}, []string{"resumed"}},
		{transfer.UploadResult{File: file, Resumed: true, StartSegment: 8, Segments: 16, Sent: 250 * mib, Elapsed: time.Second},
			[]string{"resumed", "8 of 16 segments already stored", "sent 250.0 MiB in 1s, 250.0 MiB/s"}, nil},
		{transfer.UploadResult{File: file, Resumed: true, StartSegment: 16, Segments: 16, Elapsed: 2920 * time.Millisecond},
			[]string{"resumed", "all 16 segments already stored", "nothing left to send"}, []string{"B/s"}},
	} {
		got := uploadSummary(&c.res)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: %q lacks %q", c.res, got, w)
			}
		}
		for _, w := range c.not {
			if strings.Contains(got, w) {
				t.Errorf("%+v: %q has %q", c.res, got, w)
			}
		}
	}
}
