package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/transfer"
)

// researcherClient is a client library handle on u's login and identity,
// for assertions on what the CLI does not print (read statistics).
func researcherClient(t testing.TB, s *stack, u *user) (*client.Client, *client.Identity) {
	t.Helper()
	d, err := client.OpenDir(u.dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.Identity()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Options{Broker: s.env["DOZO_BROKER"], CACert: s.env["DOZO_CA_CERT"], Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

// TestRangeFetchMovesOneSegment: a 1 MiB range inside a segment of a
// many-segment file, fetched through dozod's presigned URLs, transfers
// exactly that segment's K data pieces and nothing else — whatever the
// file's size, which is why a 1 MiB range of an 8 GiB file is cheap.
func TestRangeFetchMovesOneSegment(t *testing.T) {
	s := needStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sam, rita := s.users(t)
	ds := newDatasetID()
	const seg = 4 * mib
	sam.must(t, "dataset", "create", ds, "--title", "range", "--segment-size", "4MiB")
	src := filepath.Join(t.TempDir(), "big.bin")
	writeRandomFile(t, src, 11, 10*seg+12345, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02"), "--application", "J-DU000001", "--institution", "NIG")
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}

	c, id := researcherClient(t, s, rita)
	off := int64(5*seg + seg/3) // inside segment 5
	var out bytes.Buffer
	res, err := transfer.FetchFile(ctx, c, transfer.FetchOptions{Dataset: ds, Name: "big.bin", Output: "-", Stdout: &out,
		Identity: id, Range: &transfer.Range{Start: off, Length: mib}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want[off:off+mib]) {
		t.Fatal("range bytes differ")
	}
	st := res.Stats
	// A stored segment is 4 MiB of plaintext plus 16 bytes per 64 KiB chunk.
	pieceSize := int64((seg + seg/(64<<10)*16) / 4)
	if st.SegmentsRead != 1 || st.PiecesFetched != 4 || st.PieceBytes != 4*pieceSize {
		t.Fatalf("range fetch read %d segments, %d pieces, %d bytes; want 1 segment, its 4 data pieces, %d bytes",
			st.SegmentsRead, st.PiecesFetched, st.PieceBytes, 4*pieceSize)
	}
}
