package api

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds a file's name in dozo, in bytes.
const MaxNameLen = 255

// ValidateFileName checks a file's user-visible name, the one rule dozod
// enforces and the client checks early: 1..MaxNameLen bytes of printable
// UTF-8 (spaces allowed; control and invisible format characters not),
// no '/', not "." or "..". Names are labels, never object keys, but they
// are shown in terminals and become local file names on fetch, so nothing
// that could climb directories or hide in a terminal gets through.
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
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("file name %q contains a control or invisible character %U", name, r)
		}
	}
	return nil
}
