package api

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameLen bounds a file's whole name in dozo, in bytes; MaxNameElemLen
// bounds each '/'-separated part of it, as local file systems do.
const (
	MaxNameLen     = 1024
	MaxNameElemLen = 255
)

// NormalizeFileName returns name in Unicode NFC, the one form dozo keeps:
// "é" typed as one code point and as "e" plus a combining accent (as
// macOS file systems store it) are the same name. The client applies it to
// every name it sends; dozod refuses any other form.
func NormalizeFileName(name string) string { return norm.NFC.String(name) }

// ValidateFileName checks a file's user-visible name, the one rule dozod
// enforces and the client checks early. A name is a relative path: one or
// more parts joined by '/' ("lane2/S1_R1.fastq.gz"), at most MaxNameLen
// bytes in all, no leading or trailing '/' and no empty part. Each part is
// 1..MaxNameElemLen bytes of printable UTF-8 (spaces allowed inside, not
// at either end; control and invisible format characters not), not "."
// or "..". The whole name is in NFC (NormalizeFileName).
//
// Names are labels, never object keys, but they are shown in terminals
// and become local paths on fetch (DIR/lane2/S1_R1.fastq.gz), so an
// accepted name stays below the directory it is joined to, nothing in it
// can hide in a terminal, and two names that look the same are the same
// bytes.
func ValidateFileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("file name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("file name is not valid UTF-8")
	case name[0] == '/':
		return fmt.Errorf("file name %q starts with '/'", name)
	}
	for _, part := range strings.Split(name, "/") {
		if err := validateNamePart(name, part); err != nil {
			return err
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return fmt.Errorf("file name %q is not in Unicode NFC form (the same name composed is %q)", name, NormalizeFileName(name))
	}
	return nil
}

// validateNamePart checks one '/'-separated part of name.
func validateNamePart(name, part string) error {
	switch {
	case part == "":
		return fmt.Errorf("file name %q has an empty part (a '/' at an end, or two together)", name)
	case part == "." || part == "..":
		return fmt.Errorf("file name %q is not allowed", name)
	case len(part) > MaxNameElemLen:
		return fmt.Errorf("file name %q has a part longer than %d bytes", name, MaxNameElemLen)
	case part[0] == ' ' || part[len(part)-1] == ' ':
		return fmt.Errorf("file name %q starts or ends with a space", name)
	}
	for _, r := range part {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("file name %q contains a control or invisible character %U", name, r)
		}
	}
	return nil
}
