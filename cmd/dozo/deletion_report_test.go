package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/internal/i18n"
)

func sampleDeletionReport() *api.DeletionReport {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	return &api.DeletionReport{Dataset: "JGAD000001", Title: "WGS of 100 samples", Status: api.DeletionComplete,
		StartedBy: "sam", StartedAt: at, RunStartedAt: at.Add(7 * 24 * time.Hour), FinishedBy: "sam", FinishedAt: at.Add(7*24*time.Hour + time.Minute),
		Files: []api.DeletedFile{
			{ID: "f1", Name: "NA12878.cram", Size: 1234, SHA256: strings.Repeat("ab", 32), State: "available"},
			{ID: "f2", Name: "試料2.vcf.gz", Size: 5, State: "aborted"},
		},
		Objects: []api.DeletedObject{
			{Target: "s1", Key: "JGAD000001/f1/0/0", VersionID: "v1", Size: 700, DeletedAt: at.Add(7*24*time.Hour + time.Second)},
			{Target: "s2", Key: "JGAD000001/f1/0/1", Size: 0, DeleteMarker: true, VersionID: "v2", DeletedAt: at.Add(7*24*time.Hour + 2*time.Second)},
		},
		Targets:   []string{"s1", "s2"},
		Key:       api.DestroyedKey{Name: "dozo-JGAD000001", Versions: 2, DestroyedAt: at.Add(7*24*time.Hour + time.Minute)},
		Statement: "Every stored object of the dataset was deleted from every storage target, and its key was destroyed. Outside the reach of this deletion: copies grantees fetched before it.",
	}
}

// The text report, in English as it always was; in Japanese every label
// translated (dozod's statement stays as dozod wrote it) and the columns
// lined up by display width.
func TestDeletionReportText(t *testing.T) {
	r := sampleDeletionReport()
	if got := deletionReportText(r); got != deletionReportEnglish {
		t.Errorf("English report:\n%s\nwant\n%s", got, deletionReportEnglish)
	}
	defer i18n.Set(i18n.English)
	i18n.Set(i18n.Japanese)
	ja := deletionReportText(r)
	for _, want := range []string{"dozo 削除報告書: データセット JGAD000001", "破棄した鍵", "削除したオブジェクト (2)", "完了", "利用可能", "中止", "(削除マーカー)", "Outside the reach of this deletion"} {
		if !strings.Contains(ja, want) {
			t.Errorf("Japanese report lacks %q:\n%s", want, ja)
		}
	}
	for _, english := range []string{"Asked for", "Finished", "Key destroyed", "Deleted objects", "DELETED AT", "delete marker", "available"} {
		if strings.Contains(ja, english) {
			t.Errorf("Japanese report still says %q:\n%s", english, ja)
		}
	}
	lines := strings.Split(ja, "\n")
	if displayWidth(lines[1]) != displayWidth(lines[0]) {
		t.Errorf("title underlined with %d columns for %d:\n%s", displayWidth(lines[1]), displayWidth(lines[0]), ja)
	}
	var rows []string
	for _, l := range lines {
		if strings.Contains(l, "NA12878.cram") || strings.Contains(l, "試料2.vcf.gz") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 2 || displayWidth(rows[0][:strings.Index(rows[0], "f1")]) != displayWidth(rows[1][:strings.Index(rows[1], "f2")]) {
		t.Errorf("file rows not aligned by display width:\n%s", strings.Join(rows, "\n"))
	}
}

// deletionReportEnglish is the report as it was when the client rendered it
// (rows with wide characters now line up).
const deletionReportEnglish = `dozo deletion report: dataset JGAD000001
========================================

Dataset          JGAD000001 (WGS of 100 samples)
Status           complete
Asked for        2026-11-30T09:00:00Z by sam (dataset hidden from then on)
Ran from         2026-12-07T09:00:00Z (after the grace period)
Finished         2026-12-07T09:01:00Z by sam
Storage targets  s1, s2
Objects deleted  2 (every version)
Key destroyed    dozo-JGAD000001, versions 1-2, at 2026-12-07T09:01:00Z (HashiCorp Vault Transit)

Every stored object of the dataset was deleted from every storage target,
and its key was destroyed. Outside the reach of this deletion: copies
grantees fetched before it.

Files (2)
  NAME          ID  SIZE  SHA-256                                                           STATE
  NA12878.cram  f1  1234  abababababababababababababababababababababababababababababababab  available
  試料2.vcf.gz  f2  5     -                                                                 aborted

Deleted objects (2)
  TARGET  KEY                VERSION             SIZE  DELETED AT
  s1      JGAD000001/f1/0/0  v1                  700   2026-12-07T09:00:01Z
  s2      JGAD000001/f1/0/1  v2 (delete marker)  0     2026-12-07T09:00:02Z
`
