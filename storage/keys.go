package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxKeyLen is the longest object key accepted by ValidateKey.
const MaxKeyLen = 512

// MaxIDLen is the longest id accepted by ValidateID.
const MaxIDLen = 128

// keyRoot is the first part of every key this package derives. The version
// element lets a future layout coexist with this one in the same bucket.
const keyRoot = "dozo/v1"

// ValidateID reports whether s is acceptable as a dataset, file, target or
// failure-domain id: 1..MaxIDLen characters from [A-Za-z0-9._-], not starting
// with '.' or '-'. Such an id is always a single, non-hidden path element and
// a safe S3 key element, which is what lets keys be built by concatenation.
func ValidateID(s string) error {
	if s == "" {
		return errors.New("storage: empty id")
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("storage: id longer than %d bytes", MaxIDLen)
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("storage: id %q starts with %q", s, s[0])
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return fmt.Errorf("storage: id %q contains byte %#x (allowed: A-Z a-z 0-9 . _ -)", s, s[i])
		}
	}
	return nil
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ValidateKey reports whether key is an acceptable object key: 1..MaxKeyLen
// bytes from [A-Za-z0-9._/-], made of non-empty '/'-separated elements none
// of which starts with '.'. The last rule excludes "." and ".." (so a key can
// never climb out of a DirTarget's directory) and hidden names (which
// DirTarget reserves for its temporary files). Every key built by PieceKey,
// ManifestKey and HeaderKey from valid ids passes.
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("storage: empty object key")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("storage: object key longer than %d bytes", MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !idByte(c) && c != '/' {
			return fmt.Errorf("storage: object key %q contains byte %#x", key, c)
		}
	}
	for elem := range strings.SplitSeq(key, "/") {
		if elem == "" {
			return fmt.Errorf("storage: object key %q has an empty element (leading, trailing or double '/')", key)
		}
		if elem[0] == '.' {
			return fmt.Errorf("storage: object key %q has an element starting with '.'", key)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: empty (everything), or a string that
// is a prefix of some valid key. Its complete elements must be valid; the
// trailing partial element may be empty (prefix ends in '/').
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return fmt.Errorf("storage: list prefix longer than %d bytes", MaxKeyLen)
	}
	i := strings.LastIndexByte(prefix, '/')
	if i >= 0 {
		if err := ValidateKey(prefix[:i]); err != nil {
			return fmt.Errorf("storage: bad list prefix %q: %w", prefix, err)
		}
	}
	if last := prefix[i+1:]; last != "" {
		if err := ValidateKey(last); err != nil {
			return fmt.Errorf("storage: bad list prefix %q: %w", prefix, err)
		}
	}
	return nil
}

// DatasetPrefix returns the key prefix (ending in '/') under which all
// objects of a dataset live.
func DatasetPrefix(datasetID string) string {
	return keyRoot + "/" + datasetID + "/"
}

// FilePrefix returns the key prefix (ending in '/') under which all objects
// of one file live.
func FilePrefix(datasetID, fileID string) string {
	return DatasetPrefix(datasetID) + fileID + "/"
}

// PieceKey returns the key of piece `piece` of segment `segment`, e.g.
// "dozo/v1/<dataset>/<file>/seg-00000012/p03". Zero padding keeps a file's
// keys in segment order when listed.
func PieceKey(datasetID, fileID string, segment, piece int) string {
	return fmt.Sprintf("%sseg-%08d/p%02d", FilePrefix(datasetID, fileID), segment, piece)
}

// ParsePieceKey is the inverse of PieceKey: it returns the dataset, file,
// segment and piece of key if, and only if, key is exactly what PieceKey
// makes of them. Every other spelling (a sign, missing or extra zero
// padding, a trailing element, an invalid id) is refused, so each piece has
// one key and a key names one piece.
func ParsePieceKey(key string) (datasetID, fileID string, segment, piece int, err error) {
	bad := func() (string, string, int, int, error) {
		return "", "", 0, 0, fmt.Errorf("storage: %q is not a piece key", key)
	}
	rest, ok := strings.CutPrefix(key, keyRoot+"/")
	if !ok {
		return bad()
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || ValidateID(parts[0]) != nil || ValidateID(parts[1]) != nil {
		return bad()
	}
	segStr, ok1 := strings.CutPrefix(parts[2], "seg-")
	pieceStr, ok2 := strings.CutPrefix(parts[3], "p")
	if !ok1 || !ok2 || !allDigits(segStr) || !allDigits(pieceStr) {
		return bad()
	}
	segment, err1 := strconv.Atoi(segStr)
	piece, err2 := strconv.Atoi(pieceStr)
	// Comparing with what PieceKey makes refuses every other padding.
	if err1 != nil || err2 != nil || PieceKey(parts[0], parts[1], segment, piece) != key {
		return bad()
	}
	return parts[0], parts[1], segment, piece, nil
}

// allDigits reports whether s is one or more ASCII decimal digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ManifestKey returns the key of a file's manifest.
func ManifestKey(datasetID, fileID string) string {
	return FilePrefix(datasetID, fileID) + "manifest.json"
}

// HeaderKey returns the key of a file's age header.
func HeaderKey(datasetID, fileID string) string {
	return FilePrefix(datasetID, fileID) + "header.age"
}
