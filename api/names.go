package api

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameLen bounds a file's name in dozo, in bytes.
const MaxNameLen = 255

// NormalizeFileName returns name in Unicode NFC, the one form dozo keeps:
// "é" typed as one code point and as "e" plus a combining accent (as
// macOS file systems store it) are the same name. The client applies it to
// every name it sends; dozod refuses any other form.
func NormalizeFileName(name string) string { return norm.NFC.String(name) }

// ValidateFileName checks a file's user-visible name, the one rule dozod
// enforces and the client checks early: 1..MaxNameLen bytes of printable
// UTF-8 (spaces allowed inside, not at either end; control and invisible
// format characters not), in NFC (NormalizeFileName), no '/', not "." or
// "..". Names are labels, never object keys, but they are shown in
// terminals and become local file names on fetch, so nothing that could
// climb directories or hide in a terminal gets through, and two names that
// look the same are the same bytes.
func ValidateFileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("file name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("file name is not valid UTF-8")
	case name == "." || name == "..":
		return fmt.Errorf("file name %q is not allowed", name)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("file name %q contains '/'", name)
	case name[0] == ' ' || name[len(name)-1] == ' ':
		return fmt.Errorf("file name %q starts or ends with a space", name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("file name %q contains a control or invisible character %U", name, r)
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return fmt.Errorf("file name %q is not in Unicode NFC form (the same name composed is %q)", name, NormalizeFileName(name))
	}
	return nil
}
