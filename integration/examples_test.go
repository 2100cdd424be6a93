package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// helpExamples returns the example lines of `dozo <path> --help` as the
// binary prints them, continuation lines joined.
func helpExamples(t *testing.T, u *user, path ...string) []string {
	t.Helper()
	out := u.must(t, append(path, "--help")...)
	var lines []string
	in := false
	for _, l := range strings.Split(strings.ReplaceAll(out, "\\\n", " "), "\n") {
		switch {
		case strings.TrimSpace(l) == "EXAMPLES:":
			in = true
		case in && strings.HasPrefix(l, " ") && strings.TrimSpace(l) != "":
			lines = append(lines, strings.TrimSpace(l))
		case in:
			in = false
		}
	}
	if len(lines) == 0 {
		t.Fatalf("dozo %s --help shows no examples", strings.Join(path, " "))
	}
	return lines
}

// exampleDay is the day the help examples' dates were written for; a run
// on a later day shifts every date by as many days.
var exampleDay = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

var reDate = regexp.MustCompile(`\b20\d\d-\d\d-\d\d\b`)

// shiftDates moves every YYYY-MM-DD in line by the days since exampleDay.
func shiftDates(line string) string {
	shift := int(time.Now().UTC().Truncate(24*time.Hour).Sub(exampleDay).Hours() / 24)
	return reDate.ReplaceAllStringFunc(line, func(d string) string {
		tm, err := time.Parse(time.DateOnly, d)
		if err != nil {
			return d
		}
		return tm.AddDate(0, 0, shift).Format(time.DateOnly)
	})
}

// shell runs one example line as a user would, with bash (pipefail, so a
// failing dozo in a pipeline fails the line) in dir, dozo and the stack's
// tools on PATH.
func (u *user) shell(t *testing.T, dir, line string) {
	t.Helper()
	cmd := u.command()
	cmd.Path, cmd.Args = "/bin/bash", []string{"bash", "-o", "pipefail", "-c", line}
	cmd.Dir = dir
	age := filepath.Dir(findTool(t, "age"))
	cmd.Env = append(cmd.Env, "PATH="+u.s.bin+string(os.PathListSeparator)+age+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Errorf("example %q (as %s) failed: %v\nstdout: %s\nstderr: %s", line, u.name, err, out.String(), errb.String())
	}
}

// TestHelpExamplesOnStack runs the help examples of the data and access
// commands on the real stack, as shown, in the order a dataset's life
// takes them: create, upload, list, grant, fetch (as the grantee), the
// register, revoke, and the audit log. Only names are changed (fresh
// dataset ids, the stack's users, the config and scratch directories) and
// dates keep their distance from the day the examples were written for.
// (Every example of every command is also run up to its first request by
// cmd/dozo's TestHelpExamplesRun.)
func TestHelpExamplesOnStack(t *testing.T) {
	s := needStack(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	sam, rita := s.users(t)
	carol := s.newUser(t)
	admin := s.admin(t)
	ds1, ds3 := newDatasetID(), newDatasetID()+"3"
	wgs := "wgs-" + strings.TrimPrefix(newDatasetID(), "JGAD")
	names := strings.NewReplacer("JGAD000001", ds1, "JGAD000003", ds3, "wgs-2026", wgs,
		" bob ", " "+rita.name+" ", " carol ", " "+carol.name+" ")
	samDir, ritaDir, adminDir := t.TempDir(), t.TempDir(), t.TempDir()
	fix := func(dir, line string, u *user) string {
		line = names.Replace(shiftDates(line))
		line = strings.ReplaceAll(line, "/scratch/", filepath.Join(dir, "scratch")+"/")
		return strings.ReplaceAll(line, "~/.config/dozo", u.dir)
	}
	run := func(u *user, dir string, path ...string) {
		for _, l := range helpExamples(t, u, path...) {
			u.shell(t, dir, fix(dir, l, u))
		}
	}

	run(sam, samDir, "dataset", "create")

	// The files the upload examples name, and the BAM the fetch examples read.
	os.MkdirAll(filepath.Join(samDir, "scratch", "tmp"), 0o755)
	// run1/ is the recursive example's tree: one base name in two lanes.
	os.MkdirAll(filepath.Join(samDir, "run1", "lane1"), 0o755)
	os.MkdirAll(filepath.Join(samDir, "run1", "lane2"), 0o755)
	for i, f := range []string{"sample1.cram", "sample1.cram.crai", "scratch/tmp/out.bam", "a.fastq.gz", "b.fastq.gz",
		"run1/lane1/S1_R1.fastq.gz", "run1/lane2/S1_R1.fastq.gz"} {
		writeRandomFile(t, filepath.Join(samDir, f), uint64(100+i), int64(70000+i*1000), nil)
	}
	samText := filepath.Join(samDir, "sample1.sam")
	os.WriteFile(samText, []byte("@SQ\tSN:chr1\tLN:1000\nr1\t0\tchr1\t1\t60\t4M\t*\t0\t0\tACGT\tFFFF\n"), 0o644)
	if out, err := exec.Command("samtools", "view", "-b", "-o", filepath.Join(samDir, "sample1.bam"), samText).CombinedOutput(); err != nil {
		t.Fatalf("samtools: %v %s", err, out)
	}
	sam.must(t, "upload", "-d", ds1, filepath.Join(samDir, "sample1.bam"))
	run(sam, samDir, "upload")
	if fs := lsFiles(t, sam, ds1); len(fs) != 8 || fs["NA12878.bam"].Size != 72000 || fs["run1/lane2/S1_R1.fastq.gz"].Size != 76000 {
		t.Fatalf("after the upload examples: %+v", fs)
	}
	run(sam, samDir, "ls")

	run(sam, samDir, "grant")
	hist := grantsJSON(t, sam, ds1, "--history")
	var ritaRows, ritaScheduled, carolFuture int
	for _, g := range hist {
		ritaRows += map[bool]int{true: 1}[g.User == rita.name]
		ritaScheduled += map[bool]int{true: 1}[g.User == rita.name && g.State == "scheduled"]
		carolFuture += map[bool]int{true: 1}[g.User == carol.name && g.State == "future"]
	}
	if ritaRows != 3 || ritaScheduled != 1 || carolFuture != 1 {
		t.Fatalf("after the grant examples: %+v", hist)
	}
	run(sam, samDir, "grants")

	// The region example reads a CRAM through its index: a real one, made
	// here (no reference needed: the reads' bases are stored as they are).
	var sam20 strings.Builder
	sam20.WriteString("@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:chr20\tLN:3000000\n")
	for i := range 200 {
		fmt.Fprintf(&sam20, "r%d\t0\tchr20\t%d\t60\t8M\t*\t0\t0\tACGTACGT\tFFFFFFFF\n", i, 900000+i*5000)
	}
	cram := filepath.Join(samDir, "NA12878.cram")
	os.WriteFile(filepath.Join(samDir, "chr20.sam"), []byte(sam20.String()), 0o644)
	for _, c := range [][]string{
		{"samtools", "view", "-C", "--output-fmt-option", "no_ref=1", "-o", cram, filepath.Join(samDir, "chr20.sam")},
		{"samtools", "index", cram},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	sam.must(t, "upload", "-d", ds1, cram, cram+".crai")

	// The directories and the list the batch fetch examples name.
	for _, d := range []string{"cram", ds1, "data"} {
		os.MkdirAll(filepath.Join(ritaDir, d), 0o755)
	}
	os.WriteFile(filepath.Join(ritaDir, "samples.txt"), []byte(ds1+"/sample1.cram\n"+ds1+"/sample1.cram.crai\n"), 0o644)
	run(rita, ritaDir, "fetch")
	if fileSHA(t, filepath.Join(ritaDir, ds1, "run1", "lane2", "S1_R1.fastq.gz")) != fileSHA(t, filepath.Join(samDir, "run1", "lane2", "S1_R1.fastq.gz")) {
		t.Error("the whole-dataset fetch example did not write the nested file as uploaded")
	}
	if out, err := exec.Command("samtools", "quickcheck", filepath.Join(ritaDir, "chr20.cram")).CombinedOutput(); err != nil {
		t.Errorf("the region example's output fails samtools quickcheck: %v %s", err, out)
	}
	if fileSHA(t, filepath.Join(ritaDir, "sample1.cram")) != fileSHA(t, filepath.Join(samDir, "sample1.cram")) {
		t.Error("the fetch example's file differs from the upload")
	}
	run(sam, samDir, "revoke")

	admin.must(t, "audit", "export", "-o", filepath.Join(adminDir, "audit-2026-10.jsonl")) // the earlier export --anchor names
	run(admin, adminDir, "audit")
	run(admin, adminDir, "audit", "list")
	run(admin, adminDir, "audit", "export")
	run(admin, adminDir, "audit", "verify")
}
