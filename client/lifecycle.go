package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// lifecycleTimeout bounds a rotation or deletion call: dozod rewrites one
// header per file, or deletes every object of the dataset, before it
// answers. Both resume if cut short.
const lifecycleTimeout = 2 * time.Hour

// long returns a copy of c whose calls may take up to d.
func (c *Client) long(d time.Duration) *Client {
	cc := *c
	cc.timeout = max(c.timeout, d)
	return &cc
}

// RotateKey rotates a dataset's key: new uploads and new header wraps use
// the new key version, every stored header is rewrapped under it, and older
// versions are retired, so the stored headers open only under the new one.
// Payload objects are not re-encrypted, and file keys grantees already
// obtained keep working. Repeating it after an interruption resumes.
func (c *Client) RotateKey(ctx context.Context, dataset string) (*api.RotateKeyResponse, error) {
	var out api.RotateKeyResponse
	return &out, c.long(lifecycleTimeout).do(ctx, http.MethodPost, api.RotateKey.Path(dataset), struct{}{}, &out)
}

// DeleteDataset asks for a dataset's deletion; confirm must repeat the
// dataset id. The first call schedules it (State "scheduled"): the dataset
// is hidden at once and the deletion runs when the grace period ends. A
// call from then on runs it (every object on every target, then the key)
// and returns it complete, with the report. Repeating it after an
// interruption resumes.
func (c *Client) DeleteDataset(ctx context.Context, dataset, confirm string) (*api.DeletionStatus, error) {
	var out api.DeletionStatus
	return &out, c.long(lifecycleTimeout).do(ctx, http.MethodPost, api.DeleteDataset.Path(dataset), api.DeleteDatasetRequest{Confirm: confirm}, &out)
}

// UndeleteDataset cancels a scheduled deletion that has not begun to run:
// the dataset is visible again, as it was.
func (c *Client) UndeleteDataset(ctx context.Context, dataset string) (*api.DeletionStatus, error) {
	var out api.DeletionStatus
	return &out, c.do(ctx, http.MethodPost, api.UndeleteDataset.Path(dataset), struct{}{}, &out)
}

// DeletionReport fetches the stored report of a finished deletion.
func (c *Client) DeletionReport(ctx context.Context, dataset string) (*api.DeletionReport, error) {
	var out api.DeletionReport
	return &out, c.do(ctx, http.MethodGet, api.GetDeletionReport.Path(dataset), nil, &out)
}

// FormatDeletionReport renders a deletion report as plain text for people
// (the NBDC data-use termination report): summary first, then every file
// and every deleted object.
func FormatDeletionReport(r *api.DeletionReport) string {
	var b strings.Builder
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(&b, "dozo deletion report: dataset %s\n", r.Dataset)
	fmt.Fprintf(&b, "%s\n\n", strings.Repeat("=", 30+len(r.Dataset)))
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "Dataset\t%s (%s)\n", r.Dataset, r.Title)
	fmt.Fprintf(w, "Status\t%s\n", r.Status)
	fmt.Fprintf(w, "Asked for\t%s by %s (dataset hidden from then on)\n", ts(r.StartedAt), r.StartedBy)
	if !r.RunStartedAt.IsZero() {
		fmt.Fprintf(w, "Ran from\t%s (after the grace period)\n", ts(r.RunStartedAt))
	}
	fmt.Fprintf(w, "Finished\t%s by %s\n", ts(r.FinishedAt), r.FinishedBy)
	fmt.Fprintf(w, "Storage targets\t%s\n", strings.Join(r.Targets, ", "))
	fmt.Fprintf(w, "Objects deleted\t%d (every version)\n", len(r.Objects))
	fmt.Fprintf(w, "Key destroyed\t%s, versions 1-%d, at %s (HashiCorp Vault Transit)\n", r.Key.Name, r.Key.Versions, ts(r.Key.DestroyedAt))
	w.Flush()
	fmt.Fprintf(&b, "\n%s\n\nFiles (%d)\n", wrap(r.Statement, 76), len(r.Files))
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  NAME\tID\tSIZE\tSHA-256\tSTATE")
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %s\t%s\t%d\t%s\t%s\n", f.Name, f.ID, f.Size, orDash(f.SHA256), f.State)
	}
	w.Flush()
	fmt.Fprintf(&b, "\nDeleted objects (%d)\n", len(r.Objects))
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  TARGET\tKEY\tVERSION\tSIZE\tDELETED AT")
	for _, o := range r.Objects {
		v := orDash(o.VersionID)
		if o.DeleteMarker {
			v += " (delete marker)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%s\n", o.Target, o.Key, v, o.Size, ts(o.DeletedAt))
	}
	w.Flush()
	return b.String()
}

// wrap breaks s into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 && n+1+len(word) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
