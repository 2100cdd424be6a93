// Package i18n is the message catalog of the dozo command: every text the
// command prints for people, in English and Japanese.
//
// A message's key is its English text (a fmt format string), so English
// output is the key itself and a missing translation falls back to English.
// Translations live in one table, ja.go; adding a message is one line there
// and a call through Sprintf, Fprintf, Errorf or T at the call site.
//
// The catalog is golang.org/x/text/message/catalog; formatting is fmt's, not
// message.Printer's, so numbers print the same in both languages (no digit
// grouping in byte counts and ids that scripts read) and %w still wraps.
package i18n

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/text/language"
	"golang.org/x/text/message/catalog"
)

// The languages dozo speaks.
var (
	English  = language.English
	Japanese = language.Japanese
)

// cat holds the translations; English needs none (the key is the text).
var cat = func() *catalog.Builder {
	b := catalog.NewBuilder(catalog.Fallback(English))
	for k, v := range ja {
		// The catalog reads "${name}" as a substitution; a shell's
		// "${...}" in a text is kept by spelling its "$" as a variable.
		v = strings.ReplaceAll(v, "${", "${dollar}{")
		dollar := catalog.Var("dollar", catalog.String("$"))
		if err := b.Set(Japanese, k, dollar, catalog.String(v)); err != nil {
			panic(err)
		}
	}
	return b
}()

var current atomic.Value // language.Tag

func init() { current.Store(FromEnv(os.Getenv)) }

// Set chooses the language of what follows.
func Set(t language.Tag) { current.Store(t) }

// Lang is the language messages are printed in.
func Lang() language.Tag { return current.Load().(language.Tag) }

// Parse reads a --lang value: "en", "ja", or a locale such as
// "ja_JP.UTF-8". Anything else is an error, so a typo does not silently
// give English.
func Parse(s string) (language.Tag, error) {
	if localeTag(s) == Japanese {
		return Japanese, nil
	}
	switch l := strings.ToLower(s); {
	case l == "en", l == "c", l == "posix", strings.HasPrefix(l, "en_"), strings.HasPrefix(l, "en-"), strings.HasPrefix(l, "c."):
		return English, nil
	}
	return English, Errorf("unknown language %q (dozo speaks en and ja)", s)
}

// FromEnv is the language the environment asks for: DOZO_LANG, else the
// POSIX message locale (LC_ALL, then LC_MESSAGES, then LANG, the first that
// is set). A Japanese locale (ja, ja_JP.UTF-8, ...) gives Japanese; any
// other, or none, English.
func FromEnv(getenv func(string) string) language.Tag {
	for _, v := range []string{"DOZO_LANG", "LC_ALL", "LC_MESSAGES", "LANG"} {
		if s := getenv(v); s != "" {
			return localeTag(s)
		}
	}
	return English
}

// localeTag maps a locale name to English or Japanese.
func localeTag(s string) language.Tag {
	s = strings.ToLower(s)
	if i := strings.IndexAny(s, ".@"); i >= 0 {
		s = s[:i] // ja_JP.UTF-8, ja_JP@...
	}
	if s == "ja" || strings.HasPrefix(s, "ja_") || strings.HasPrefix(s, "ja-") {
		return Japanese
	}
	return English
}

// capture receives the text of a catalog entry without formatting it.
type capture struct{ s strings.Builder }

func (c *capture) Render(s string)     { c.s.WriteString(s) }
func (c *capture) Arg(int) interface{} { return nil }

// T is key in the current language: its translation, or key itself.
func T(key string) string { return In(Lang(), key) }

// In is key in language t: its translation, or key itself.
func In(t language.Tag, key string) string {
	if t == English {
		return key
	}
	var c capture
	if err := cat.Context(t, &c).Execute(key); err != nil {
		return key
	}
	return c.s.String()
}

// Has reports whether key has a translation into t.
func Has(t language.Tag, key string) bool {
	var c capture
	return cat.Context(t, &c).Execute(key) == nil
}

// Sprintf is fmt.Sprintf with format translated.
func Sprintf(format string, a ...any) string { return fmt.Sprintf(T(format), a...) }

// Fprintf is fmt.Fprintf with format translated.
func Fprintf(w io.Writer, format string, a ...any) (int, error) {
	return fmt.Fprintf(w, T(format), a...)
}

// Fprintln writes msg, translated, and a newline.
func Fprintln(w io.Writer, msg string) (int, error) { return fmt.Fprintln(w, T(msg)) }

// Errorf is fmt.Errorf with format translated; %w wraps as usual.
func Errorf(format string, a ...any) error { return fmt.Errorf(T(format), a...) }

// New is errors.New with msg translated.
func New(msg string) error { return errors.New(T(msg)) }
