package i18n

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "en"},
		{map[string]string{"LANG": "ja_JP.UTF-8"}, "ja"},
		{map[string]string{"LANG": "ja_JP.eucJP"}, "ja"},
		{map[string]string{"LANG": "en_US.UTF-8"}, "en"},
		{map[string]string{"LANG": "C"}, "en"},
		{map[string]string{"LANG": "ja_JP.UTF-8", "LC_MESSAGES": "C"}, "en"},
		{map[string]string{"LANG": "C", "LC_MESSAGES": "ja_JP.UTF-8"}, "ja"},
		{map[string]string{"LC_MESSAGES": "C", "LC_ALL": "ja_JP.UTF-8"}, "ja"},
		{map[string]string{"LC_ALL": "ja_JP.UTF-8", "DOZO_LANG": "en"}, "en"},
		{map[string]string{"LANG": "C.UTF-8", "DOZO_LANG": "ja"}, "ja"},
		{map[string]string{"LANG": "japanese"}, "en"},
	} {
		if got := FromEnv(func(k string) string { return tc.env[k] }); got.String() != tc.want {
			t.Errorf("FromEnv(%v) = %v, want %s", tc.env, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for s, want := range map[string]string{"ja": "ja", "ja_JP.UTF-8": "ja", "JA": "ja", "en": "en", "en_GB.UTF-8": "en", "C": "en", "POSIX": "en"} {
		if got, err := Parse(s); err != nil || got.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"", "xx", "fr", "japanese"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

// English is the key itself; Japanese is the entry, with the arguments
// formatted by fmt (no digit grouping); a key without an entry stays English;
// Errorf still wraps.
func TestFormatting(t *testing.T) {
	defer Set(Lang())
	ja["test: %d bytes of %s"] = "テスト: %[2]s の %[1]d バイト"
	defer delete(ja, "test: %d bytes of %s")
	if err := cat.SetString(Japanese, "test: %d bytes of %s", ja["test: %d bytes of %s"]); err != nil {
		t.Fatal(err)
	}
	Set(English)
	if got := Sprintf("test: %d bytes of %s", 1234567, "a.bam"); got != "test: 1234567 bytes of a.bam" {
		t.Errorf("English: %q", got)
	}
	Set(Japanese)
	if got := Sprintf("test: %d bytes of %s", 1234567, "a.bam"); got != "テスト: a.bam の 1234567 バイト" {
		t.Errorf("Japanese: %q", got)
	}
	if got := Sprintf("no entry %s", "x"); got != "no entry x" {
		t.Errorf("missing entry: %q", got)
	}
	base := io.ErrUnexpectedEOF
	if err := Errorf("test: %d bytes of %s: %w", 1, "b", base); !errors.Is(err, base) {
		t.Errorf("Errorf does not wrap: %v", err)
	}
}

// Every entry uses each argument of its key once or more, with the
// key's verb, so no argument is lost or misprinted in Japanese: argument
// indexes ("%[2]s") reorder, they do not drop.
func TestVerbsKept(t *testing.T) {
	for k, v := range ja {
		kv, vv := verbs(k), verbs(v)
		if len(kv) != len(vv) {
			t.Errorf("%q: arguments %v, Japanese uses %v", k, kv, vv)
			continue
		}
		for i, c := range kv {
			if vv[i] != c {
				t.Errorf("%q: argument %d is %%%c, Japanese prints it with %%%c", k, i+1, c, vv[i])
			}
		}
	}
}

// verbs maps each argument a format prints (1-based, in order) to its
// verb letter, following fmt's rules for explicit indexes ("%[2]s" and the
// verbs after it).
func verbs(s string) map[int]byte {
	out := map[int]byte{}
	arg := 1
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 >= len(s) {
			continue
		}
		j := i + 1
		if s[j] == '%' {
			i = j
			continue
		}
		for j < len(s) && strings.IndexByte("+-# 0", s[j]) >= 0 {
			j++
		}
		if j < len(s) && s[j] == '[' {
			end := strings.IndexByte(s[j:], ']')
			if end < 0 {
				break
			}
			n := 0
			for _, d := range s[j+1 : j+end] {
				n = n*10 + int(d-'0')
			}
			arg = n
			j += end + 1
		}
		for j < len(s) && strings.IndexByte("0123456789.", s[j]) >= 0 {
			j++
		}
		if j < len(s) {
			out[arg] = s[j]
			arg++
		}
		i = j
	}
	return out
}
