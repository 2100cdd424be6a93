package api

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
)

// aliases are the routes that share another route's action.
var aliases = map[*Route]*Route{MetricsRoot: Metrics}

func TestRouteTable(t *testing.T) {
	patterns := map[string]bool{}
	actions := map[string]*Route{}
	mux := http.NewServeMux() // panics on a malformed or conflicting pattern
	for _, r := range Routes {
		if patterns[r.Pattern] {
			t.Errorf("%s: listed twice", r.Pattern)
		}
		patterns[r.Pattern] = true
		mux.HandleFunc(r.Pattern, func(http.ResponseWriter, *http.Request) {})
		switch r.Method() {
		case "GET", "POST", "PUT", "DELETE":
		default:
			t.Errorf("%s: method %q", r.Pattern, r.Method())
		}
		if r.Rule.Doc() == "" {
			t.Errorf("%s: rule %q has no Doc", r.Pattern, r.Rule)
		}
		if r.Method() == "GET" && r.Request != nil {
			t.Errorf("%s: a GET with a request body", r.Pattern)
		}
		if r.Action == "" {
			if r != GetHealth {
				t.Errorf("%s: no action (only health is not recorded one by one)", r.Pattern)
			}
			continue
		}
		if first, dup := actions[r.Action]; dup && aliases[r] != first {
			t.Errorf("%s: action %q is already %s's", r.Pattern, r.Action, first.Pattern)
		}
		if _, dup := actions[r.Action]; !dup {
			actions[r.Action] = r
		}
	}
	for alias, of := range aliases {
		if alias.Action != of.Action || alias.Rule != of.Rule || alias.Login != of.Login {
			t.Errorf("%s is an alias of %s but differs from it", alias.Pattern, of.Pattern)
		}
	}
	for _, a := range PresignActions {
		if actions[a] == nil {
			t.Errorf("presign action %q names no route", a)
		}
	}
}

// TestRoutePathsMatch: a path built from a route, with any parameter
// values, is served by that route and gives back the values.
func TestRoutePathsMatch(t *testing.T) {
	values := []string{"JGAD000001", "a b", "a/b", "x?y#z", "100%", "ü.vcf", "%2F"}
	for i, r := range Routes {
		mux := http.NewServeMux()
		for _, o := range Routes {
			mux.HandleFunc(o.Pattern, func(w http.ResponseWriter, req *http.Request) {
				if o != r {
					t.Errorf("%s: path served by %s", r.Pattern, o.Pattern)
				}
				for j, name := range r.Params() {
					if got, want := req.PathValue(name), values[(i+j)%len(values)]; got != want {
						t.Errorf("%s: {%s} = %q, want %q", r.Pattern, name, got, want)
					}
				}
			})
		}
		var ps []string
		for j := range r.Params() {
			ps = append(ps, values[(i+j)%len(values)])
		}
		p := r.Path(ps...)
		req := httptest.NewRequest(r.Method(), "http://dozod"+p, nil)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("%s: %s answered %d", r.Pattern, p, w.Code)
		}
	}
}

func TestBuildPath(t *testing.T) {
	for _, c := range []struct {
		r      *Route
		params []string
		want   string
	}{
		{ListDatasets, nil, "/v1/datasets"},
		{ShowDataset, []string{"JGAD000001"}, "/v1/datasets/JGAD000001"},
		{FetchFile, []string{"D", "dir/a b.vcf"}, "/v1/datasets/D/files/dir%2Fa%20b.vcf/fetch"},
		{AddMember, []string{"D", "bob", "submitter"}, "/v1/datasets/D/members/bob/submitter"},
		{CommitSegment, []string{"up1", "7"}, "/v1/uploads/up1/segments/7"},
		{ShowScrub, []string{"../x"}, "/v1/scrubs/..%2Fx"},
		{UnfreezeAccess, []string{"user", "a?b#c"}, "/v1/admin/freezes/user/a%3Fb%23c"},
		{&Route{Pattern: "GET /v1/x/{id}/{$}"}, []string{"7"}, "/v1/x/7/"},
	} {
		got, err := c.r.BuildPath(c.params...)
		if err != nil || got != c.want {
			t.Errorf("%s %q: %q, %v; want %q", c.r.Pattern, c.params, got, err, c.want)
		}
	}
	for _, c := range []struct {
		r      *Route
		params []string
	}{
		{ListDatasets, []string{"x"}},
		{ShowDataset, nil},
		{FetchFile, []string{"D"}},
		{FetchFile, []string{"D", "a", "b"}},
		{AddMember, []string{"D", "bob"}},
	} {
		if p, err := c.r.BuildPath(c.params...); err == nil {
			t.Errorf("%s %q: built %q", c.r.Pattern, c.params, p)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s %q: Path did not panic", c.r.Pattern, c.params)
				}
			}()
			c.r.Path(c.params...)
		}()
	}
}

// FuzzBuildPath: whatever the values, the built path has the route's
// shape (as many segments, the literal ones unchanged) and each value
// comes back from its segment unchanged.
func FuzzBuildPath(f *testing.F) {
	f.Add("JGAD000001", "a.vcf", "bob")
	f.Add("a/b", "..", "%2F")
	f.Add("", "?#", "\x00\xff")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		vals := []string{a, b, c}
		for _, r := range Routes {
			n := len(r.Params())
			p, err := r.BuildPath(vals[:n]...)
			if err != nil {
				t.Fatalf("%s: %v", r.Pattern, err)
			}
			got, want := strings.Split(p, "/"), strings.Split(r.template(), "/")
			if len(got) != len(want) {
				t.Fatalf("%s: %q has %d segments, want %d", r.Pattern, p, len(got), len(want))
			}
			k := 0
			for i := range want {
				if !isWildcard(want[i]) {
					if got[i] != want[i] {
						t.Fatalf("%s: %q: segment %q, want %q", r.Pattern, p, got[i], want[i])
					}
					continue
				}
				v, err := url.PathUnescape(got[i])
				if err != nil || v != vals[k] {
					t.Fatalf("%s: %q: segment %q gives %q, %v; want %q", r.Pattern, p, got[i], v, err, vals[k])
				}
				k++
			}
			if n < len(vals) {
				if _, err := r.BuildPath(vals[:n+1]...); err == nil {
					t.Fatalf("%s: accepted %d params", r.Pattern, n+1)
				}
			}
		}
	})
}

var update = flag.Bool("update", false, "rewrite docs/api.md from the route table")

// TestAPIDoc fails when docs/api.md is not what the route table says; run
// `go test ./api -run TestAPIDoc -update` to rewrite it.
func TestAPIDoc(t *testing.T) {
	const path = "../docs/api.md"
	doc := apiDoc()
	if *update {
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, doc) {
		t.Errorf("%s is out of date with api.Routes: run go test ./api -run TestAPIDoc -update", path)
	}
}

func apiDoc() []byte {
	var b bytes.Buffer
	b.WriteString(`# dozod HTTP API (version 1)

Generated from the route table in api/routes.go by ` + "`go test ./api -run TestAPIDoc -update`" + `; do not edit.
The package documentation of api (api/api.go) says what holds for every route:
the token, error bodies, 404 for what the caller may not see, freezes.

| Method | Path | Action | Login | Repeatable | Request | Response | Notes |
|---|---|---|---|---|---|---|---|
`)
	for _, r := range Routes {
		_, path, _ := strings.Cut(r.Pattern, " ")
		login := yesNo(r.Login)
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s | %s |\n", r.Method(), path, cell(r.Action), login,
			yesNo(r.Repeatable || r.Method() == "GET"), typeName(r.RequestType()), typeName(r.ResponseType()), cell(r.Note))
	}
	b.WriteString(`
## Who may call what

Each route's rule, as broker/matrix_test.go checks it cell by cell.
"Repeatable" above: the call has the same effect done once or twice, so the
client sends it again when it cannot tell whether dozod acted on a try.

| Route | Action | Rule | Who |
|---|---|---|---|
`)
	for _, r := range Routes {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Pattern, cell(r.Action), r.Rule, r.Rule.Doc())
	}
	return b.Bytes()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cell(s string) string {
	if s == "" {
		return "–"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "–"
	}
	return "`" + strings.ReplaceAll(t.String(), "api.", "") + "`"
}
