// Package storage stores an opaque byte stream erasure-coded across several
// object-storage targets and reads it back.
//
// The stream (in dozo: the age ciphertext of one file) is cut into segments
// of Layout.SegmentSize bytes. Each segment is split into K data pieces and
// extended with M Reed–Solomon parity pieces; the K+M pieces go to K+M
// distinct targets chosen by Place so that no failure domain holds more than
// M pieces of a segment. A Manifest records, per segment, where every piece
// lives and its hash; the manifest is authenticated (HMAC via an
// Authenticator), and the Reader never returns bytes whose piece hashes do
// not match it.
//
// The package knows nothing about encryption. Object keys are derived from
// validated ids (ValidateID), never from user-supplied names.
package storage
