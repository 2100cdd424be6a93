package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestAccessUsageErrors: the access commands refuse bad input locally,
// with one line and a hint, before any request (the broker here does not
// exist, so reaching it would be a different error).
func TestAccessUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]string{
		"--institution is required":   {"grant", "D", "bob", "--until", "2030-01-01", "--application", "J-DU000001"},
		"bad --application":           {"grant", "D", "bob", "--until", "2030-01-01", "--application", "DU1", "--institution", "X"},
		"before --from":               {"grant", "D", "bob", "--from", "2030-02-01", "--until", "2030-01-01", "--institution", "X"},
		"--from":                      {"grant", "D", "bob", "--from", "soon", "--until", "2030-01-01", "--institution", "X"},
		"--reason is required":        {"revoke", "D", "bob"},
		"choose one":                  {"grants", "--csv", "--json"},
		"at most one DATASET":         {"grants", "A", "B"},
		"bad --access-level":          {"dataset", "create", "D", "--title", "t", "--access-level", "open"},
		"bad --jgad":                  {"dataset", "create", "D", "--title", "t", "--jgad", "JGAD1"},
		"bad --jgap":                  {"dataset", "create", "D", "--title", "t", "--jgap", "JGAP1234567"},
		"bad --max-use-days":          {"dataset", "create", "D", "--title", "t", "--max-use-days", "400"},
		"not both":                    {"admin", "freeze", "--user", "u", "--dataset", "D", "--reason", "r"},
		"give --user NAME":            {"admin", "unfreeze", "--reason", "r"},
		"freeze record":               {"admin", "freeze", "--user", "u"},
		"want custodian or submitter": {"dataset", "member", "add", "D", "bob", "--role", "owner"},
	}
	for want, args := range cases {
		_, _, err := run(t, append([]string{"--config-dir", dir, "--broker", "http://127.0.0.1:1"}, args...)...)
		if err == nil {
			t.Errorf("%v succeeded", args)
			continue
		}
		var b bytes.Buffer
		printError(&b, err, false)
		line := b.String()
		if !strings.Contains(line, want) || !strings.Contains(line, "(") || strings.Count(line, "\n") != 1 {
			t.Errorf("%v: %q lacks %q, a hint, or is not one line", args, line, want)
		}
	}
}
