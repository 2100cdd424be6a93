package broker

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// ValidateName is the one file-name rule of the API, api.ValidateFileName.
var ValidateName = api.ValidateFileName

// validateText checks free text such as a dataset title.
func validateText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s longer than %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains control character %U", what, r)
		}
	}
	return nil
}

// parseIndex parses a path segment index: decimal digits only, no sign, no
// leading zeros (one spelling per number), below limit.
func parseIndex(s string, limit int) (int, error) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad index %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad index %q", s)
		}
	}
	n, _ := strconv.Atoi(s)
	if n >= limit {
		return 0, fmt.Errorf("index %d out of range 0..%d", n, limit-1)
	}
	return n, nil
}

// ParsePieceKey returns the segment and piece a key names if, and only if,
// key is exactly storage.PieceKey(datasetID, fileID, seg, piece) for some
// seg < segments and piece < shards. Any other key (a manifest, another
// file's piece, a different spelling) is refused, so a presigned URL can
// only ever reach a piece of this one file.
func ParsePieceKey(key, datasetID, fileID string, segments, shards int) (seg, piece int, err error) {
	ds, file, seg, piece, err := storage.ParsePieceKey(key)
	if err != nil {
		return 0, 0, err
	}
	if ds != datasetID || file != fileID {
		return 0, 0, fmt.Errorf("key %q is not a piece of file %s", key, fileID)
	}
	if seg >= segments {
		return 0, 0, fmt.Errorf("key %q: segment %d out of range 0..%d", key, seg, segments-1)
	}
	if piece >= shards {
		return 0, 0, fmt.Errorf("key %q: piece %d out of range 0..%d", key, piece, shards-1)
	}
	return seg, piece, nil
}

// isLowerHex reports whether s is exactly n lowercase hex digits.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeFixed decodes standard base64 of exactly n bytes.
func decodeFixed(what, s string, n int) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != n {
		clear(b)
		return nil, fmt.Errorf("%s must be %d bytes in standard base64", what, n)
	}
	return b, nil
}
