package region

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// VOffset is a BGZF virtual offset: the file offset of a block's first
// byte in the high 48 bits, an offset into its decompressed data in the
// low 16.
type VOffset uint64

func voffset(block int64, within int) VOffset { return VOffset(uint64(block)<<16 | uint64(within)) }

// Block is the file offset of the BGZF block the offset points into.
func (v VOffset) Block() int64 { return int64(v >> 16) }

// Within is the offset into that block's decompressed data.
func (v VOffset) Within() int { return int(v & 0xffff) }

func (v VOffset) String() string { return fmt.Sprintf("%d:%d", v.Block(), v.Within()) }

// bgzfEOF is the empty block that ends every BGZF file (SAM/BAM spec 4.1.2).
var bgzfEOF = []byte{
	0x1f, 0x8b, 0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x06, 0x00, 0x42, 0x43,
	0x02, 0x00, 0x1b, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
}

const (
	maxBlockSize = 1 << 16
	// maxBlockData is how much plaintext a written block holds, as htslib
	// writes them: stored uncompressed it still fits a block.
	maxBlockData = 0xff00
)

var errNotBGZF = errors.New("not a BGZF block")

// blockSize parses the gzip member header at the start of b (at least the
// 18 bytes of a BGZF header, and its extra field if longer) and returns the
// whole block's size from the BC subfield.
func blockSize(b []byte) (size int, headerLen int, err error) {
	if len(b) < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3]&4 == 0 {
		return 0, 0, errNotBGZF
	}
	xlen := int(binary.LittleEndian.Uint16(b[10:12]))
	if len(b) < 12+xlen {
		return 0, 0, fmt.Errorf("%w: extra field cut short", errNotBGZF)
	}
	extra := b[12 : 12+xlen]
	for len(extra) >= 4 {
		slen := int(binary.LittleEndian.Uint16(extra[2:4]))
		if len(extra) < 4+slen {
			break
		}
		if extra[0] == 'B' && extra[1] == 'C' && slen == 2 {
			size = int(binary.LittleEndian.Uint16(extra[4:6])) + 1
			if size < 12+xlen+8 {
				return 0, 0, fmt.Errorf("%w: block size %d too small", errNotBGZF, size)
			}
			return size, 12 + xlen, nil
		}
		extra = extra[4+slen:]
	}
	return 0, 0, fmt.Errorf("%w: no BC subfield", errNotBGZF)
}

// readBlock reads the BGZF block at off and returns its size in the file
// and its decompressed data, checked against the block's CRC-32 and length.
func readBlock(r io.ReaderAt, off int64, buf []byte) (size int, data []byte, err error) {
	var head [maxBlockSize]byte
	n, err := r.ReadAt(head[:18], off)
	if n < 18 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("BGZF block at %d: %w", off, err)
	}
	xlen := int(binary.LittleEndian.Uint16(head[10:12]))
	if 12+xlen+8 > maxBlockSize {
		return 0, nil, fmt.Errorf("at byte %d: %w: extra field of %d bytes", off, errNotBGZF, xlen)
	}
	if xlen > 6 {
		if n, err := r.ReadAt(head[:12+xlen], off); n < 12+xlen {
			return 0, nil, fmt.Errorf("BGZF block at %d: %w", off, orUnexpectedEOF(err))
		}
	}
	size, hl, err := blockSize(head[:12+max(xlen, 6)])
	if err != nil {
		return 0, nil, fmt.Errorf("at byte %d: %w", off, err)
	}
	blk := head[:size]
	if n, err := r.ReadAt(blk, off); n < size {
		return 0, nil, fmt.Errorf("BGZF block at %d: %w", off, orUnexpectedEOF(err))
	}
	isize := int(binary.LittleEndian.Uint32(blk[size-4:]))
	if isize > maxBlockSize {
		return 0, nil, fmt.Errorf("BGZF block at %d: says it holds %d bytes (at most %d)", off, isize, maxBlockSize)
	}
	data = buf[:0]
	if cap(data) < isize {
		data = make([]byte, 0, maxBlockSize)
	}
	fr := flate.NewReader(bytes.NewReader(blk[hl : size-8]))
	data = data[:isize]
	if _, err := io.ReadFull(fr, data); err != nil {
		return 0, nil, fmt.Errorf("BGZF block at %d: %w", off, err)
	}
	if n, _ := fr.Read(head[:1]); n != 0 {
		return 0, nil, fmt.Errorf("BGZF block at %d: more data than its size field says", off)
	}
	if crc32.ChecksumIEEE(data) != binary.LittleEndian.Uint32(blk[size-8:]) {
		return 0, nil, fmt.Errorf("BGZF block at %d: CRC-32 mismatch", off)
	}
	return size, data, nil
}

func orUnexpectedEOF(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeBlocks compresses data into BGZF blocks of at most maxBlockData
// bytes each and writes them to w.
func writeBlocks(w io.Writer, data []byte) (int64, error) {
	var total int64
	for len(data) > 0 {
		n := min(len(data), maxBlockData)
		blk, err := compressBlock(data[:n])
		if err != nil {
			return total, err
		}
		m, err := w.Write(blk)
		total += int64(m)
		if err != nil {
			return total, err
		}
		data = data[n:]
	}
	return total, nil
}

// compressBlock returns one BGZF block holding data (at most maxBlockData
// bytes); data that does not compress is stored.
func compressBlock(data []byte) ([]byte, error) {
	if len(data) > maxBlockData {
		return nil, fmt.Errorf("BGZF block data of %d bytes (at most %d)", len(data), maxBlockData)
	}
	for _, level := range []int{flate.DefaultCompression, flate.NoCompression} {
		var b bytes.Buffer
		b.Write([]byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 6, 0, 'B', 'C', 2, 0, 0, 0})
		fw, err := flate.NewWriter(&b, level)
		if err != nil {
			return nil, err
		}
		fw.Write(data)
		if err := fw.Close(); err != nil {
			return nil, err
		}
		var tail [8]byte
		binary.LittleEndian.PutUint32(tail[:4], crc32.ChecksumIEEE(data))
		binary.LittleEndian.PutUint32(tail[4:], uint32(len(data)))
		b.Write(tail[:])
		blk := b.Bytes()
		if len(blk) > maxBlockSize {
			continue
		}
		binary.LittleEndian.PutUint16(blk[16:18], uint16(len(blk)-1))
		return blk, nil
	}
	return nil, errors.New("BGZF block does not fit even stored")
}

// bgzfReader reads the decompressed stream of a BGZF file from its start,
// block by block, and knows the virtual offset of the next byte.
type bgzfReader struct {
	r     io.ReaderAt
	size  int64 // file size
	block int64 // offset of the current block
	next  int64 // offset of the block after it
	data  []byte
	pos   int
	buf   []byte
}

func newBGZFReader(r io.ReaderAt, size int64) *bgzfReader {
	return &bgzfReader{r: r, size: size, buf: make([]byte, 0, maxBlockSize)}
}

// fill makes data[pos:] non-empty, reading blocks as needed; io.EOF at the
// end of the file.
func (z *bgzfReader) fill() error {
	for z.pos >= len(z.data) {
		if z.next >= z.size {
			return io.EOF
		}
		n, data, err := readBlock(z.r, z.next, z.buf)
		if err != nil {
			return err
		}
		z.block, z.next, z.data, z.pos = z.next, z.next+int64(n), data, 0
	}
	return nil
}

func (z *bgzfReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := z.fill(); err != nil {
		return 0, err
	}
	n := copy(p, z.data[z.pos:])
	z.pos += n
	return n, nil
}

// tell is the virtual offset of the next byte Read returns; at the end of
// a block, the start of the next one (a block may hold 65536 bytes, one
// more than the 16 bits of a virtual offset can say).
func (z *bgzfReader) tell() VOffset {
	if z.data != nil && z.pos >= len(z.data) {
		return voffset(z.next, 0)
	}
	return voffset(z.block, z.pos)
}
