package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// Under LANG=ja_JP.UTF-8 the main commands answer in Japanese: creating a
// dataset, uploading, granting, listing, fetching, whoami and a refusal;
// the dataset table keeps a Japanese title whole, and --json stays the
// same in either language.
func TestCLIJapanese(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ja := func(u *user, args ...string) (stdout, stderr string, err error) {
		t.Helper()
		cmd := u.command(args...)
		cmd.Env = append(cmd.Env, "DOZO_LANG=", "LC_ALL=", "LC_MESSAGES=", "LANG=ja_JP.UTF-8")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		return out.String(), errb.String(), err
	}
	mustJA := func(u *user, want string, args ...string) string {
		t.Helper()
		out, errOut, err := ja(u, args...)
		if err != nil {
			t.Fatalf("LANG=ja_JP.UTF-8 dozo %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		if !strings.Contains(out, want) {
			t.Errorf("LANG=ja_JP.UTF-8 dozo %s: no %q in\n%s", strings.Join(args, " "), want, out)
		}
		return out
	}
	ds := newDatasetID()
	const title = "日本人全ゲノム解析 100 検体"
	mustJA(sam, "データセット "+ds+" を作成しました", "dataset", "create", ds, "--title", title)
	src := filepath.Join(t.TempDir(), "sample1.vcf.gz")
	writeRandomFile(t, src, 71, 300_000, nil)
	mustJA(sam, "アップロードしました", "upload", "--dataset", ds, src)
	mustJA(sam, "へのアクセスを", "grant", ds, rita.name, "--until", day(30), "--application", "J-DU000001", "--institution", "国立遺伝学研究所")
	if out := mustJA(rita, ds, "dataset", "list"); !strings.Contains(out, title) {
		t.Errorf("dataset list lost the Japanese title:\n%s", out)
	}
	mustJA(rita, "ダウンロードしました", "fetch", ds+"/sample1.vcf.gz", "-o", filepath.Join(t.TempDir(), "out.vcf.gz"))
	mustJA(rita, "ユーザー", "whoami")
	if _, errOut, err := ja(rita, "fetch", newDatasetID()+"/x", "-o", filepath.Join(t.TempDir(), "x")); err == nil ||
		!strings.Contains(errOut, "dozo: ") || !(strings.Contains(errOut, "見つかりません") || strings.Contains(errOut, "拒否されました")) {
		t.Errorf("a fetch of a missing dataset in Japanese: %v %q", err, errOut)
	}
	jsonJA, _, err := ja(rita, "dataset", "show", ds, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if jsonEN := rita.must(t, "dataset", "show", ds, "--json"); jsonJA != jsonEN {
		t.Errorf("--json differs by language:\n%s\n%s", jsonJA, jsonEN)
	}

	// The register's table is in Japanese; its CSV and the audit CSV are
	// the same bytes in both languages.
	if out := mustJA(sam, "状態", "grants", ds); !strings.Contains(out, "有効") || strings.Contains(out, "active") {
		t.Errorf("grants table in Japanese:\n%s", out)
	}
	for _, args := range [][]string{{"grants", ds, "--history", "--csv"}, {"audit", "list", "--dataset", ds, "--csv"}} {
		csvJA, _, err := ja(sam, args...)
		if err != nil {
			t.Fatal(err)
		}
		if csvEN := sam.must(t, args...); csvJA != csvEN || !strings.HasPrefix(csvEN, "id,") && !strings.HasPrefix(csvEN, "seq,") {
			t.Errorf("dozo %s differs by language:\n%s\n%s", strings.Join(args, " "), csvJA, csvEN)
		}
	}
}
