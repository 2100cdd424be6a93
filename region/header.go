package region

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxHeader bounds a header's text: real ones are kilobytes to a few
// megabytes (many samples, many contigs).
const maxHeader = 256 << 20

// bamHeader reads a BAM header from the start of z and returns the
// reference names and the virtual offset of the first alignment.
func bamHeader(z *bgzfReader) ([]string, VOffset, error) {
	var fixed [8]byte
	if _, err := io.ReadFull(z, fixed[:]); err != nil {
		return nil, 0, fmt.Errorf("BAM header: %w", err)
	}
	if string(fixed[:4]) != "BAM\x01" {
		return nil, 0, errors.New("not a BAM file (no BAM\\1 magic)")
	}
	lText := int32(binary.LittleEndian.Uint32(fixed[4:]))
	if lText < 0 || lText > maxHeader {
		return nil, 0, fmt.Errorf("BAM header: text length %d out of range", lText)
	}
	if _, err := io.CopyN(io.Discard, z, int64(lText)); err != nil {
		return nil, 0, fmt.Errorf("BAM header text: %w", orUnexpectedEOF(err))
	}
	var b4 [4]byte
	u32 := func() (int32, error) {
		_, err := io.ReadFull(z, b4[:])
		return int32(binary.LittleEndian.Uint32(b4[:])), err
	}
	nref, err := u32()
	if err != nil || nref < 0 || nref > maxHeader/9 {
		return nil, 0, fmt.Errorf("BAM header: bad reference count %d (%v)", nref, err)
	}
	names := make([]string, 0, min(nref, 1<<16))
	for range nref {
		l, err := u32()
		if err != nil || l < 1 || l > 1<<16 {
			return nil, 0, fmt.Errorf("BAM header: bad reference name length %d (%v)", l, err)
		}
		name := make([]byte, l+4)
		if _, err := io.ReadFull(z, name); err != nil {
			return nil, 0, fmt.Errorf("BAM header: %w", orUnexpectedEOF(err))
		}
		names = append(names, string(bytes.TrimRight(name[:l], "\x00")))
	}
	return names, z.tell(), nil
}

// bcfHeader reads a BCF header from the start of z and returns the contig
// names (the dictionary records refer to) and the first record's offset.
func bcfHeader(z *bgzfReader) ([]string, VOffset, error) {
	var fixed [9]byte
	if _, err := io.ReadFull(z, fixed[:]); err != nil {
		return nil, 0, fmt.Errorf("BCF header: %w", err)
	}
	if string(fixed[:4]) != "BCF\x02" {
		return nil, 0, errors.New("not a BCF 2 file (no BCF\\2 magic)")
	}
	l := binary.LittleEndian.Uint32(fixed[5:])
	if l > maxHeader {
		return nil, 0, fmt.Errorf("BCF header: text length %d out of range", l)
	}
	text := make([]byte, l)
	if _, err := io.ReadFull(z, text); err != nil {
		return nil, 0, fmt.Errorf("BCF header text: %w", orUnexpectedEOF(err))
	}
	names, err := vcfContigs(text)
	if err != nil {
		return nil, 0, err
	}
	return names, z.tell(), nil
}

// vcfContigs lists a VCF header's ##contig IDs in dictionary order: the
// order of the lines, or IDX= where given (BCF spec 6.2.1).
func vcfContigs(text []byte) ([]string, error) {
	var names []string
	byIdx := map[int]string{}
	for _, line := range bytes.Split(text, []byte("\n")) {
		s, ok := strings.CutPrefix(string(line), "##contig=<")
		if !ok {
			continue
		}
		s = strings.TrimSuffix(strings.TrimSpace(s), ">")
		id, idx := "", -1
		for _, f := range splitAttrs(s) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "ID":
				id = v
			case "IDX":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 1<<24 {
					return nil, fmt.Errorf("VCF header: contig %q has a bad IDX %q", id, v)
				}
				idx = n
			}
		}
		if id == "" {
			return nil, errors.New("VCF header: ##contig line without ID")
		}
		if idx >= 0 {
			byIdx[idx] = id
		} else {
			names = append(names, id)
		}
	}
	if len(byIdx) > 0 {
		out := make([]string, 0, len(byIdx))
		for i := 0; len(byIdx) > 0; i++ {
			id, ok := byIdx[i]
			if !ok {
				id = ""
			}
			delete(byIdx, i)
			out = append(out, id)
		}
		return out, nil
	}
	return names, nil
}

// splitAttrs splits k=v,k="a,b" on commas outside quotes.
func splitAttrs(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// vcfHeaderEnd reads a bgzipped VCF from the start of z and returns the
// virtual offset of the first line not starting with '#'.
func vcfHeaderEnd(z *bgzfReader) (VOffset, error) {
	var fixed [2]byte
	if _, err := io.ReadFull(z, fixed[:]); err != nil || string(fixed[:]) != "##" {
		return 0, errors.New("not a VCF file (does not start with ##)")
	}
	// Walk byte by byte through the decompressed blocks, so the offset of a
	// line start is exact; headers are small next to the data.
	var read int64 = 2
	lineStart := false
	for {
		if lineStart {
			at := z.tell()
			var c [1]byte
			if _, err := io.ReadFull(z, c[:]); err != nil {
				if err == io.EOF {
					return at, nil // a header and no records
				}
				return 0, fmt.Errorf("VCF header: %w", err)
			}
			read++
			if c[0] != '#' {
				return at, nil
			}
		}
		if err := z.fill(); err != nil {
			if err == io.EOF {
				return z.tell(), nil
			}
			return 0, fmt.Errorf("VCF header: %w", err)
		}
		rest := z.data[z.pos:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			z.pos = len(z.data)
			read += int64(len(rest))
			lineStart = false
		} else {
			z.pos += i + 1
			read += int64(i + 1)
			lineStart = true
		}
		if read > maxHeader {
			return 0, fmt.Errorf("VCF header longer than %d bytes", maxHeader)
		}
	}
}

// samRefNames lists the @SQ SN: names of a SAM header text in order.
func samRefNames(text []byte) ([]string, error) {
	var names []string
	for _, line := range bytes.Split(text, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("@SQ\t")) {
			continue
		}
		found := false
		for _, f := range bytes.Split(bytes.TrimRight(line, "\r"), []byte("\t"))[1:] {
			if v, ok := bytes.CutPrefix(f, []byte("SN:")); ok {
				names = append(names, string(v))
				found = true
				break
			}
		}
		if !found {
			return nil, errors.New("SAM header: @SQ line without SN")
		}
	}
	return names, nil
}
