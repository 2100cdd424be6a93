package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// buildDozo builds this command into a temporary directory, for tests
// that run it as a shell would.
func buildDozo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dozo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

// The bash script loads without error and registers dozo; it completes
// commands, subcommands and flags (also after arguments, which dozo moves
// flags in front of). zsh's and fish's scripts are printed.
func TestCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := buildDozo(t)
	env := append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "DOZO_CONFIG_DIR="+t.TempDir())
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash -c %q: %v: %s", script, err, out)
		}
		return string(out)
	}
	if out := sh("source <(dozo completion bash) && complete -p dozo"); !strings.Contains(out, "_dozo_complete dozo") {
		t.Errorf("complete -p dozo: %q", out)
	}
	for line, want := range map[string]string{
		"dozo fe":                "fetch",
		"dozo dataset cr":        "create",
		"dozo admin fr":          "freeze frozen",
		"dozo fetch D/x --ou":    "--output",
		"dozo completion":        "",
		"dozo scrub --dee":       "--deep",
		"dozo dataset member ad": "add",
	} {
		words := strings.Fields(line)
		script := "source <(dozo completion bash); COMP_WORDS=(" + line + "); COMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "; _dozo_complete; echo \"${COMPREPLY[*]}\""
		if got := strings.TrimSpace(sh(script)); want != "" && got != want {
			t.Errorf("completing %q: %q, want %q", line, got, want)
		}
	}
	for _, shell := range []string{"zsh", "fish"} {
		if out, _, err := run(t, "completion", shell); err != nil || !strings.Contains(out, "dozo") {
			t.Errorf("completion %s: %v %q", shell, err, out)
		}
	}
	if _, _, err := run(t, "completion", "tcsh"); err == nil {
		t.Error("completion tcsh succeeded")
	}
}

func TestManPage(t *testing.T) {
	out, _, err := run(t, "man")
	if err != nil || !strings.HasPrefix(out, ".nh\n.TH dozo 1") || !strings.Contains(out, "dataset") || !strings.Contains(out, "fetch") {
		t.Fatalf("dozo man: %v\n%.300s", err, out)
	}
}
