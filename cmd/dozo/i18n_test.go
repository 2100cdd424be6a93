package main

import (
	"context"
	"errors"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/transfer"
)

// The unit tests check English text, whatever the locale of the machine
// running them.
func TestMain(m *testing.M) {
	i18n.Set(i18n.English)
	os.Exit(m.Run())
}

// Every help text of every command, flag and heading has a Japanese entry.
func TestHelpHasJapanese(t *testing.T) {
	var missing []string
	walkHelp(newApp(), func(s *string) {
		if !i18n.Has(i18n.Japanese, *s) {
			missing = append(missing, *s)
		}
	})
	for _, h := range []string{"NAME:", "USAGE:", "VERSION:", "DESCRIPTION:", "CATEGORY:", "COMMANDS:", "GLOBAL OPTIONS:", "OPTIONS:", "[global options]", "command [command options]", "[command options]", "[arguments...]", "(default: "} {
		if !i18n.Has(i18n.Japanese, h) {
			missing = append(missing, h)
		}
	}
	reportMissing(t, missing)
}

// Every message the command prints through the catalog (a constant text
// passed to i18n.T, Sprintf, Fprintf, Fprintln, Errorf or New, to notice
// or say, as the words of plural, or as a column heading, in this
// package's source) has a Japanese entry, and so has each state word a
// table shows, each error text of the client and dozod that the error
// line translates, and each constant operation and hint of the client's
// and transfer's errors.
func TestMessagesHaveJapanese(t *testing.T) {
	keys := catalogCalls(t)
	if len(keys) < 20 {
		t.Fatalf("found only %d messages through the catalog; is the scan broken?", len(keys))
	}
	var missing []string
	keys = append(append(append(append(keys, errorTexts...), statusKeys()...), clientNotices(t)...), stateWords...)
	for _, k := range append(keys, clientOpsAndHints(t)...) {
		if !i18n.Has(i18n.Japanese, k) {
			missing = append(missing, k)
		}
	}
	reportMissing(t, missing)
}

func reportMissing(t *testing.T, missing []string) {
	t.Helper()
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no Japanese for %q (add it to internal/i18n/ja.go)", m)
	}
}

// catalogCalls are the constant message keys given to package i18n in the
// non-test Go files of this directory.
func catalogCalls(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	seen := map[string]bool{}
	var keys []string
	for _, f := range sourceFiles(t, fset, ".") {
		add := func(call *ast.CallExpr, what string, arg int, mustConst bool) {
			if len(call.Args) <= arg {
				return
			}
			tv, err := types.Eval(fset, nil, call.Args[arg].Pos(), types.ExprString(call.Args[arg]))
			if err != nil || tv.Value == nil || tv.Value.Kind() != constant.String {
				if mustConst {
					t.Errorf("%s: %s with a format that is not a constant text: %s", fset.Position(call.Pos()), what, types.ExprString(call.Args[arg]))
				}
				return
			}
			if k := constant.StringVal(tv.Value); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fun := call.Fun.(type) {
			case *ast.Ident: // plural(n, "file", "files") and its kin
				switch fun.Name {
				case "plural", "pluralWord", "allOf":
					add(call, fun.Name, 1, false)
					add(call, fun.Name, 2, false)
				case "columns": // columns(w, "NAME", "SIZE")
					for i := 1; i < len(call.Args); i++ {
						add(call, fun.Name, i, false)
					}
				case "headings":
					for i := range call.Args {
						add(call, fun.Name, i, false)
					}
				case "say": // mount's notices
					add(call, fun.Name, 0, false)
				}
			case *ast.CallExpr: // notice(c)("format", ...)
				if id, ok := fun.Fun.(*ast.Ident); ok && id.Name == "notice" {
					add(call, "notice", 0, false)
				}
			case *ast.SelectorExpr:
				if x, ok := fun.X.(*ast.Ident); !ok || x.Name != "i18n" {
					return true
				}
				switch fun.Sel.Name {
				case "T", "New":
					add(call, "i18n."+fun.Sel.Name, 0, false)
				case "Sprintf", "Errorf":
					add(call, "i18n."+fun.Sel.Name, 0, true)
				case "Fprintf", "Fprintln":
					add(call, "i18n."+fun.Sel.Name, 1, true)
				}
			}
			return true
		})
	}
	return keys
}

// In Japanese, the error line translates the client's texts, urfave/cli's
// complaints and, by status, dozod's refusals it has no entry for.
func TestJapaneseErrorLine(t *testing.T) {
	defer i18n.Set(i18n.English)
	i18n.Set(i18n.Japanese)
	forbidden := &client.APIError{Status: 403}
	forbidden.Body.Error = "user bob holds no grant for dataset JGAD000001"
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&client.Error{Op: "fetching JGAD000001/a.bam", Err: forbidden},
			"JGAD000001/a.bam のダウンロード: 拒否されました: user bob holds no grant for dataset JGAD000001 (データセットの管理責任者または管理者にアクセスを依頼してください)"},
		{&client.Error{Op: "whoami", Err: client.ErrNotLoggedIn},
			"whoami: ログインしていません (先に 'dozo login --username NAME' を実行してください)"},
		{&client.Error{Op: "connecting to dozod", Err: errors.New("no broker address"), Hint: "pass --broker URL or set DOZO_BROKER"},
			"dozod への接続: no broker address (--broker URL を指定するか DOZO_BROKER を設定してください)"},
		{errors.New(`Required flag "output" not set`), `必須のフラグ "output" が指定されていません`},
		{errors.New(`invalid value "x" for flag -concurrency: parse error`), `フラグ -concurrency の値 "x" が不正です: parse error`},
	} {
		if got := formatError(tc.err, false); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// LANG=ja_JP.UTF-8 gives Japanese help; --lang en and LANG=C give English.
func TestJapaneseHelp(t *testing.T) {
	bin := buildDozo(t)
	help := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DOZO_LANG=", "LC_ALL=", "LC_MESSAGES=")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dozo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, args := range [][]string{{"--help"}, {"fetch", "--help"}, {"dataset", "--help"}, {"audit", "list", "--help"}} {
		ja := help([]string{"LANG=ja_JP.UTF-8"}, args...)
		for _, want := range []string{"使い方:", "オプション:"} {
			if !strings.Contains(ja, want) {
				t.Errorf("LANG=ja_JP.UTF-8 dozo %s: no %q in\n%s", strings.Join(args, " "), want, ja)
			}
		}
		if en := help([]string{"LANG=ja_JP.UTF-8"}, append([]string{"--lang", "en"}, args...)...); !strings.Contains(en, "USAGE:") {
			t.Errorf("dozo --lang en %s: not English:\n%s", strings.Join(args, " "), en)
		}
		if en := help([]string{"LANG=C"}, args...); !strings.Contains(en, "USAGE:") || strings.Contains(en, "使い方") {
			t.Errorf("LANG=C dozo %s: not English:\n%s", strings.Join(args, " "), en)
		}
	}
	if ja := help([]string{"LANG=C"}, "--lang", "ja", "fetch", "--help"); !strings.Contains(ja, "ダウンロード") {
		t.Errorf("dozo --lang ja fetch --help: no Japanese:\n%s", ja)
	}
}

func statusKeys() []string {
	var ks []string
	for _, p := range errorPatterns {
		ks = append(ks, p.format)
	}
	for _, k := range statusWords {
		ks = append(ks, k)
	}
	for _, p := range clientPhrases {
		ks = append(ks, p.format)
	}
	return ks
}

// clientNotices are the notice formats of the client library (the Notice
// calls of packages client and transfer), which dozo prints through notice.
func clientNotices(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"../../client", "../../transfer"} {
		fs, err := filepath.Glob(dir + "/*.go")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	re := regexp.MustCompile(`\b(?:Notice|notice)\(("(?:[^"\\]|\\.)*")`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			k, err := strconv.Unquote(m[1])
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, k)
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d client notices; is the scan broken?", len(out))
	}
	return out
}

// notYetChecked are files whose text TestNoTextBypassesCatalog does not
// check yet: their messages are being reworked elsewhere. Remove a file
// from the list once its text goes through the catalog.
var notYetChecked = map[string]bool{}

// No text for people bypasses the catalog: a constant text with words in
// it, printed with fmt or io, made into an error with fmt.Errorf or
// errors.New, shown as a prompt, given as the operation or hint of a
// client.Error, or added to a table cell with + or +=, is a message
// without a Japanese entry. Texts through i18n are checked by
// TestMessagesHaveJapanese; debug lines ("dozo: debug: ...", for
// developers and operators) stay English.
func TestNoTextBypassesCatalog(t *testing.T) {
	fset := token.NewFileSet()
	verbs := regexp.MustCompile(`%[-+# 0-9.*\[\]]*[a-zA-Z%]`)
	words := regexp.MustCompile(`[A-Za-z]{2,}`)
	sinks := map[string]bool{"fmt.Fprintf": true, "fmt.Printf": true, "fmt.Sprintf": true, "fmt.Errorf": true, "fmt.Fprintln": true,
		"fmt.Println": true, "fmt.Fprint": true, "fmt.Print": true, "fmt.Sprint": true, "fmt.Sprintln": true, "errors.New": true,
		"io.WriteString": true, "prompt": true}
	checked := 0
	for _, f := range sourceFiles(t, fset, ".") {
		if notYetChecked[filepath.Base(fset.Position(f.Pos()).Filename)] {
			continue
		}
		// check reports the constant texts with words in e, looking
		// through + and parentheses but not into calls (whose arguments
		// are checked where they are made).
		var check func(e ast.Expr, where string)
		check = func(e ast.Expr, where string) {
			switch e := e.(type) {
			case *ast.ParenExpr:
				check(e.X, where)
			case *ast.BinaryExpr:
				if e.Op == token.ADD {
					check(e.X, where)
					check(e.Y, where)
				}
			case *ast.BasicLit:
				if e.Kind != token.STRING {
					return
				}
				v, err := strconv.Unquote(e.Value)
				// A text of one token (a file suffix, a flag name) is
				// no sentence.
				if err != nil || strings.HasPrefix(v, "dozo: debug: ") || !strings.ContainsAny(strings.TrimSpace(v), " \t\n") {
					return
				}
				if words.MatchString(verbs.ReplaceAllString(v, " ")) {
					t.Errorf("%s: %s with a text that bypasses the catalog: %q (use package i18n)", fset.Position(e.Pos()), where, v)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				fn := ""
				switch fun := n.Fun.(type) {
				case *ast.Ident:
					fn = fun.Name
				case *ast.SelectorExpr:
					fn = "." + fun.Sel.Name
					if x, ok := fun.X.(*ast.Ident); ok {
						fn = x.Name + fn
					}
				}
				if sinks[fn] || strings.HasSuffix(fn, ".WriteString") {
					checked++
					for _, a := range n.Args {
						check(a, fn)
					}
				}
			case *ast.CompositeLit:
				if types.ExprString(n.Type) != "client.Error" {
					return true
				}
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k := types.ExprString(kv.Key); k == "Op" || k == "Hint" {
							check(kv.Value, "client.Error "+k)
						}
					}
				}
			case *ast.AssignStmt:
				if n.Tok == token.ADD_ASSIGN {
					for _, r := range n.Rhs {
						check(r, "+=")
					}
				}
				for _, r := range n.Rhs {
					if b, ok := r.(*ast.BinaryExpr); ok && b.Op == token.ADD {
						check(b, "+")
					}
				}
			}
			return true
		})
	}
	if checked < 50 {
		t.Fatalf("checked only %d calls; is the scan broken?", checked)
	}
}

// clientOpsAndHints are the constant operations and hints packages client
// and transfer give their errors (hintError, opError, an Error literal's
// Op and Hint), which the error line translates whole.
func clientOpsAndHints(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	var out []string
	add := func(e ast.Expr) {
		if l, ok := e.(*ast.BasicLit); ok && l.Kind == token.STRING {
			if v, err := strconv.Unquote(l.Value); err == nil && v != "" {
				out = append(out, v)
			}
		}
	}
	for _, f := range sourceFiles(t, fset, "../../client", "../../transfer") {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && len(n.Args) >= 2 {
					switch id.Name {
					case "hintError":
						add(n.Args[0])
						add(n.Args[1])
					case "opError":
						add(n.Args[0])
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && (k.Name == "Op" || k.Name == "Hint") {
					add(n.Value)
				}
			case *ast.AssignStmt: // op := "...", hint = "..."
				for i, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok && (id.Name == "op" || id.Name == "hint") && i < len(n.Rhs) {
						add(n.Rhs[i])
					}
				}
			case *ast.ValueSpec: // const op = "..."
				for i, id := range n.Names {
					if (id.Name == "op" || id.Name == "hint") && i < len(n.Values) {
						add(n.Values[i])
					}
				}
			}
			return true
		})
	}
	// The phrases a fetch's hint is made of (transfer's fetcher.explain).
	out = append(out, "run the same command again; nothing verified was kept yet, so it starts from the beginning",
		"a fetch to standard output", "a fetch to a device or FIFO", "a --raw fetch", "a --range fetch",
		"run the same command again to resume")
	if len(out) < 30 {
		t.Fatalf("found only %d operations and hints; is the scan broken?", len(out))
	}
	return out
}

// The operations and hints the client and transfer compose from a wording
// and a name are said in Japanese, the names kept as they are.
func TestJapaneseClientPhrases(t *testing.T) {
	defer i18n.Set(i18n.English)
	i18n.Set(i18n.Japanese)
	for en, want := range map[string]string{
		"fetching JGAD000001/open": "JGAD000001/open のダウンロード",
		"run the same command again; a fetch to standard output starts from the beginning":                   "同じコマンドをもう一度実行してください。標準出力へのダウンロードは最初からやり直しになります",
		"free some disk space, then run the same command again to resume (12.0 MiB of it verified and kept)": "ディスクの空きを確保してください。その後、同じコマンドをもう一度実行すると再開します (検証済みの 12.0 MiB は保持しています)",
		"is dozod running? check --broker / DOZO_BROKER; then run the same command again to resume":          "dozod は動作していますか? --broker / DOZO_BROKER を確認してください。その後、同じコマンドをもう一度実行すると再開します",
		"a name of no phrase": "a name of no phrase",
	} {
		if got := clientPhrase(en); got != want {
			t.Errorf("%q:\n got  %q\n want %q", en, got, want)
		}
	}
	// As transfer words a fetch that cannot start.
	_, err := transfer.FetchFile(context.Background(), nil, transfer.FetchOptions{Dataset: "JGAD000001", Name: "a.bam"})
	if line := formatError(err, false); !strings.HasPrefix(line, "JGAD000001/a.bam のダウンロード: ") || strings.Contains(line, "fetching") || strings.Contains(line, "no age identity") {
		t.Errorf("transfer's error in Japanese: %q", line)
	}
}

// sourceFiles parses the non-test Go files of dirs.
func sourceFiles(t *testing.T, fset *token.FileSet, dirs ...string) []*ast.File {
	t.Helper()
	var out []*ast.File
	for _, dir := range dirs {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
	}
	return out
}
