package catalog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestScheduleAndCancelDeletion: a scheduled deletion hides the dataset
// and changes nothing else; cancelling it restores the dataset; a deletion
// is due only from its runs_at on, and once its run has begun it can no
// longer be cancelled.
func TestScheduleAndCancelDeletion(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "DS1")
	if err := mkUpload(t, c, "DS1", "u1", "a.bam", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.CancelDeletion(ctx, "DS1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel with nothing scheduled: %v", err)
	}
	runsAt := t0.Add(7 * 24 * time.Hour)
	d, err := c.ScheduleDeletion(ctx, "DS1", "sam", t0, runsAt)
	if err != nil || d.StartedBy != "sam" || !d.StartedAt.Equal(t0) || !d.RunsAt.Equal(runsAt) || d.RunStartedAt != nil {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := c.Dataset(ctx, "DS1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("scheduled dataset still visible: %v", err)
	}
	if u, _ := c.Upload(ctx, "u1"); u.State != UploadOpen {
		t.Fatalf("scheduling ended the open upload: %s", u.State)
	}
	// Scheduling again keeps the first schedule.
	if d, _ := c.ScheduleDeletion(ctx, "DS1", "admin", t0.Add(time.Hour), runsAt.Add(time.Hour)); d.StartedBy != "sam" || !d.RunsAt.Equal(runsAt) {
		t.Fatalf("rescheduled: %+v", d)
	}
	if due, _ := c.DueDeletions(ctx, runsAt.Add(-time.Nanosecond)); len(due) != 0 {
		t.Fatalf("due early: %v", due)
	}
	if due, _ := c.DueDeletions(ctx, runsAt); len(due) != 1 || due[0] != "DS1" {
		t.Fatalf("due: %v", due)
	}
	if err := c.CancelDeletion(ctx, "DS1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dataset(ctx, "DS1"); err != nil {
		t.Fatalf("cancelled dataset not visible: %v", err)
	}
	if due, _ := c.DueDeletions(ctx, runsAt); len(due) != 0 {
		t.Fatalf("cancelled deletion still due: %v", due)
	}

	// Scheduled again, then run: no cancel any more.
	if _, err := c.ScheduleDeletion(ctx, "DS1", "sam", t0, runsAt); err != nil {
		t.Fatal(err)
	}
	d, err = c.StartDeletion(ctx, "DS1", "dozod", runsAt)
	if err != nil || d.StartedBy != "sam" || d.RunStartedAt == nil || !d.RunStartedAt.Equal(runsAt) {
		t.Fatalf("start: %+v %v", d, err)
	}
	if u, _ := c.Upload(ctx, "u1"); u.State != UploadAborted {
		t.Fatalf("the run left the upload %s", u.State)
	}
	if err := c.CancelDeletion(ctx, "DS1"); !errors.Is(err, ErrState) {
		t.Fatalf("cancel after the run began: %v", err)
	}
	if _, err := c.Dataset(ctx, "DS1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused cancel made the dataset visible")
	}
}
