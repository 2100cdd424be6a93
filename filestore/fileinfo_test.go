package filestore_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/filestore"
)

func randomKey() []byte {
	k := make([]byte, 16)
	rand.Read(k)
	return k
}

func TestFileInfoSealing(t *testing.T) {
	key := randomKey()
	fi := &filestore.FileInfo{Name: "x.bam", Size: 5, SHA256: strings.Repeat("a", 64), MD5: strings.Repeat("b", 32), CreatedBy: "sam"}
	obj, err := filestore.SealFileInfo(key, "D", "f1", fi)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(obj, []byte("x.bam")) || bytes.Contains(obj, []byte("aaaa")) {
		t.Fatal("sealed info shows the name or checksum")
	}
	if got, err := filestore.OpenFileInfo(key, "D", "f1", obj); err != nil || got.Name != "x.bam" {
		t.Fatalf("open: %+v %v", got, err)
	}
	for name, try := range map[string]func() error{
		"other file":    func() error { _, err := filestore.OpenFileInfo(key, "D", "f2", obj); return err },
		"other dataset": func() error { _, err := filestore.OpenFileInfo(key, "E", "f1", obj); return err },
		"other key":     func() error { _, err := filestore.OpenFileInfo(randomKey(), "D", "f1", obj); return err },
		"flipped bit": func() error {
			bad := bytes.Clone(obj)
			bad[len(bad)-1] ^= 1
			_, err := filestore.OpenFileInfo(key, "D", "f1", bad)
			return err
		},
	} {
		if try() == nil {
			t.Errorf("%s: opened", name)
		}
	}
}
