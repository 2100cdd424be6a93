package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
)

func TestScrubReportAndExitStatus(t *testing.T) {
	r := &api.ScrubRun{ID: "scrub-1", State: api.ScrubDone, Deep: true, Repair: true, Dataset: "JGAD1",
		Summary: api.ScrubSummary{Files: 2, FilesDone: 2, Segments: 8, Pieces: 48, Bytes: 48 << 20, Found: 4, Missing: 1, Hash: 3,
			Repaired: 1, Unrecoverable: 1, DamagedFiles: 1, Seconds: 2, BytesPerSec: 24 << 20},
		Findings: []api.ScrubFinding{
			{Dataset: "JGAD1", File: "a.bam", Segment: 0, Piece: 1, Target: "s1-a", Kind: "hash", Action: "repaired", MovedTo: "s2-b"},
			{Dataset: "JGAD1", File: "b.bam", Segment: 2, Piece: 0, Target: "s1-a", Kind: "missing", Action: "unrecoverable"},
		},
		Unrecoverable: []api.ScrubUnrecoverable{{Dataset: "JGAD1", File: "b.bam", FileID: "f1", Segment: 2, Pieces: []int{0, 3, 5}}},
	}
	var out bytes.Buffer
	printScrub(&out, r)
	for _, want := range []string{"deep scrub with repair of JGAD1", "2 of 2 checked", "48.0 MiB read and hashed", "missing 1",
		"repaired  ", "24.0 MiB/s", "UNRECOVERABLE JGAD1/b.bam (f1) segment 2: pieces 0, 3 and 5 lost", "1 segment, 1 file marked damaged", "4 bad pieces (missing 1", "repaired -> s2-b"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	r.Shards = []api.ScrubShard{
		{Shard: 1, Of: 2, Job: "scrub-1.shard1", State: api.JobDone, Files: 1, FilesDone: 1, Owner: "host-a:12:ab", Attempts: 2},
		{Shard: 2, Of: 2, Job: "scrub-1.shard2", State: api.JobFailed, Files: 1, Error: "vault unavailable"},
	}
	out.Reset()
	printScrub(&out, r)
	for _, want := range []string{"Checked in 2 shards", "1/2    scrub-1.shard1  done    1/1    host-a:12:ab  2", "2/2    scrub-1.shard2  failed  0/1    -", "shard 2: vault unavailable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	r.Shards = nil
	app := newApp()
	app.Writer = &bytes.Buffer{}
	c := cli.NewContext(app, flag.NewFlagSet("x", flag.ContinueOnError), nil)
	err := reportScrub(c, r)
	var ec cli.ExitCoder
	var ce *client.Error
	if !errors.As(err, &ec) || ec.ExitCode() != exitUnrecoverable || !errors.As(err, &ce) || client.Hint(err) == "" {
		t.Fatalf("unrecoverable run: %v", err)
	}
	r.Summary.Unrecoverable, r.Unrecoverable = 0, nil
	if err := reportScrub(c, r); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	r.State, r.Error = api.ScrubFailed, "vault unavailable"
	if err := reportScrub(c, r); err == nil || errors.As(err, &ec) {
		t.Fatalf("failed run: %v", err)
	}
}

func TestScrubRefusesBadFlags(t *testing.T) {
	// Refused before any broker is contacted (none is configured here).
	for want, args := range map[string][]string{
		"--file needs a DATASET": {"scrub", "--file", "a.bam"},
		"bad --rate":             {"scrub", "JGAD1", "--rate", "fast", "--deep"},
		"add --deep":             {"scrub", "JGAD1", "--rate", "10MiB/s"},
		"bad/id":                 {"scrub", "bad/id"},
		"at most one DATASET":    {"scrub", "A", "B"},
	} {
		_, _, err := run(t, args...)
		if err == nil || !strings.Contains(errorLine(err, false), want) {
			t.Errorf("dozo %v: %v, want an error about %q", args, err, want)
		}
	}
}
