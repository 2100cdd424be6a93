package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDeletedDatasetUploadRerun: an upload by a submitter who is not the
// dataset's custodian is interrupted, and the dataset is deleted. Each
// rerun of the same command gets one clear line with the dataset's state:
// its deletion scheduled, and once it ran, deleted and its id never
// reused. The custodian gets the same from create; nobody an internal
// error.
func TestDeletedDatasetUploadRerun(t *testing.T) {
	s := needStack(t)
	// The proxy's refused commits are 503s: fail at once rather than
	// retry them as a dozod outage.
	t.Setenv("DOZO_BROKER_RETRY", "0")
	sam, rita := s.users(t)
	cb := s.commitBlocker(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "deleted mid-upload", "--segment-size", "1MiB")
	sam.must(t, "dataset", "member", "add", ds, rita.name, "--role", "submitter")
	src := filepath.Join(t.TempDir(), "reads.fastq")
	writeRandomFile(t, src, 91, 3*mib, nil)
	interruptedUpload(t, s, cb, rita, ds, src)

	rerun := func(want ...string) {
		t.Helper()
		// Through the same broker address as the first run: the journal
		// is kept per broker.
		out, errOut, err := cb.dozo(rita, "upload", "--dataset", ds, src)
		line := strings.TrimSpace(errOut)
		if err == nil || strings.Count(line, "\n") != 0 {
			t.Fatalf("rerun: %v, stdout %q, stderr %q; want a refusal in one line", err, out, errOut)
		}
		t.Logf("rerun: %s", line)
		for _, w := range append(want, "dataset \""+ds+"\"") {
			if !strings.Contains(line, w) || strings.Contains(line, "internal error") {
				t.Errorf("rerun: %q, want it to say %q", line, w)
			}
		}
	}
	sam.must(t, "dataset", "delete", ds, "--confirm", ds)
	rerun("is scheduled for deletion at")
	deleteWhenDue(t, sam, ds, "--report", filepath.Join(t.TempDir(), "report"))
	rerun("was deleted on", "its id cannot be reused")
	rerun("was deleted on", "its id cannot be reused")
	if line := sam.refused(t, "dataset", "create", ds, "--title", "again"); !strings.Contains(line, "was deleted on") {
		t.Errorf("create of the deleted id: %q", line)
	}
	if line := sam.refused(t, "ls", ds); !strings.Contains(line, "was deleted on") {
		t.Errorf("ls of the deleted dataset by its custodian: %q", line)
	}
}
