package filestore_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/dozo-vault/dozo/filestore"
)

func TestChecksums(t *testing.T) {
	data := []byte("the whole plaintext")
	wantSHA, wantMD5 := sha256.Sum256(data), md5.Sum(data)

	c := filestore.NewChecksums(true)
	c.Write(data[:5])
	c.Write(data[5:])
	if !bytes.Equal(c.SHA256.Sum(nil), wantSHA[:]) || !bytes.Equal(c.MD5.Sum(nil), wantMD5[:]) {
		t.Fatal("Write: wrong checksums")
	}

	// Fed side by side through Writers, as the upload does.
	c = filestore.NewChecksums(true)
	for _, w := range c.Writers() {
		w.Write(data)
	}
	if !bytes.Equal(c.SHA256.Sum(nil), wantSHA[:]) || !bytes.Equal(c.MD5.Sum(nil), wantMD5[:]) {
		t.Fatal("Writers: wrong checksums")
	}

	c = filestore.NewChecksums(false)
	io.Copy(c, bytes.NewReader(data))
	if c.MD5 != nil || len(c.Writers()) != 1 || !bytes.Equal(c.SHA256.Sum(nil), wantSHA[:]) {
		t.Fatal("without MD5: wrong hashes")
	}
}
