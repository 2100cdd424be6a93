package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
)

// Many files at once: the planning of a batch upload or fetch, and the
// pool that runs its transfers. Each file of a batch is one UploadFile or
// FetchFile, with the properties those keep; a batch adds that a failed
// file does not stop the others, and that a rerun of the same batch skips
// what is already done.

// DefaultParallel is how many files a batch transfers at once by default:
// one per core, at least 4 (small files wait on the network, not the CPU)
// and at most 16.
func DefaultParallel() int { return min(max(4, runtime.NumCPU()), 16) }

// MaxParallel bounds --parallel.
const MaxParallel = 64

// RunBatch calls do(ctx, i) for i in [0, n), at most parallel at a time,
// in order of i. A failing call does not stop the others; once ctx ends,
// calls not yet started are not made and get ctx's error. It returns each
// call's error, nil for those that succeeded.
func RunBatch(ctx context.Context, n, parallel int, do func(ctx context.Context, i int) error) []error {
	errs := make([]error, n)
	if n == 0 {
		return errs
	}
	parallel = max(1, min(parallel, n))
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = do(ctx, i)
			}
		}()
	}
	i := 0
feed:
	for ; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for ; i < n; i++ {
		errs[i] = context.Cause(ctx)
	}
	return errs
}

// BoundBatchHeap sets one soft memory limit for parallel transfers of
// files of dataset d, each allowed what one transfer alone is (its segment
// buffers and slack; see boundHeap), so that the transfers' own limits,
// which then leave it alone, do not make the collector run for all of
// them against the budget of one. It returns the function that restores
// the previous limit; nothing is set when the user set GOMEMLIMIT.
func BoundBatchHeap(parallel int, d *api.Dataset) (restore func()) {
	seg := d.PlainSegmentSize
	k, m := int64(max(d.K, 1)), int64(max(d.M, 0))
	up := 2*seg/k*(k+m) + pipeBlocks*pipeBlockSize
	down := int64(readahead(seg)+1)*seg + seg/k*m + pipeBlocks*pipeBlockSize
	return boundHeap(int64(max(parallel, 1))*(max(up, down)+heapSlack) - heapSlack)
}

// UploadItem is one local file of a batch upload.
type UploadItem struct {
	Path string // as given on the command line, or found below a directory given
	Name string // its name in dozo
	Size int64
}

// UploadName is the name in dozo of the file at path, as the user gave
// the path: the path itself, '/'-separated, cleaned and in NFC, when it is
// relative and stays below the working directory ("lane2/S1_R1.fastq.gz"
// keeps its directory, so two lanes' S1_R1.fastq.gz stay apart); else its
// base name ("/scratch/tmp/out.bam" is "out.bam", "../x.bam" is "x.bam").
func UploadName(path string) string {
	p := filepath.Clean(path)
	if filepath.IsAbs(p) || !filepath.IsLocal(p) {
		return client.DefaultName(p)
	}
	return api.NormalizeFileName(filepath.ToSlash(p))
}

// errNoMatch: a glob matched no file. It is a missing file (fs.ErrNotExist).
type errNoMatch struct{}

func (errNoMatch) Error() string        { return "matches no file" }
func (errNoMatch) Is(target error) bool { return target == fs.ErrNotExist }

// hasGlob reports whether s has the characters of a glob pattern.
func hasGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// ExpandUploads turns the arguments of an upload into the files to send,
// in the order given (a directory's files in lexical order):
//
//   - a regular file (or a link to one, given by name) is itself, named by
//     UploadName;
//   - a directory, with recursive, is every regular file below it, named
//     UploadName(dir) + "/" + its path below ("." adds nothing); links and
//     other files below it are neither followed nor sent, and skip is told
//     of each;
//   - a path that does not exist but has glob characters is the files it
//     matches (a glob the shell did not expand, e.g. quoted).
//
// Every problem is found before anything is sent, and the error names the
// argument: a missing path, a directory without recursive, a glob that
// matches nothing, a name dozo refuses, two files with one name, a name
// that is also another's directory.
func ExpandUploads(args []string, recursive bool, skip func(path, why string)) ([]UploadItem, error) {
	if skip == nil {
		skip = func(string, string) {}
	}
	var items []UploadItem
	var add func(arg string, globbed bool) error
	add = func(arg string, globbed bool) error {
		op := "uploading " + arg
		fi, err := os.Stat(arg)
		if errors.Is(err, fs.ErrNotExist) && !globbed && hasGlob(arg) {
			matches, gerr := filepath.Glob(arg)
			if gerr != nil {
				return hintError(op, "check the pattern", gerr)
			}
			if len(matches) == 0 {
				return hintError(op, "check the pattern", errNoMatch{})
			}
			for _, m := range matches {
				if err := add(m, true); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			return hintError(op, "check the path", err)
		}
		switch {
		case fi.IsDir() && !recursive:
			return hintError(op, "pass --recursive (-r) to upload the files below it", errors.New("is a directory"))
		case fi.IsDir():
			return walkUploads(arg, &items, skip)
		case !fi.Mode().IsRegular():
			return hintError(op, "upload regular files; for a stream, save it to a file first (resume needs to re-read it)",
				errors.New("not a regular file"))
		}
		items = append(items, UploadItem{Path: arg, Name: UploadName(arg), Size: fi.Size()})
		return nil
	}
	for _, a := range args {
		if err := add(a, false); err != nil {
			return nil, err
		}
	}
	return items, checkUploadNames(items)
}

// walkUploads appends the regular files below dir to items.
func walkUploads(dir string, items *[]UploadItem, skip func(path, why string)) error {
	prefix := UploadName(dir)
	if filepath.Clean(dir) == "." {
		prefix = ""
	}
	root := dir
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// A link given by name is followed, as cp -r does; links below
		// it are not.
		root = filepath.Clean(dir) + string(filepath.Separator)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return hintError("uploading "+p, "check the path and its permissions", err)
		}
		switch t := d.Type(); {
		case d.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			skip(p, "a symbolic link, not followed")
			return nil
		case !t.IsRegular():
			skip(p, "not a regular file")
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return hintError("uploading "+p, "check the path", err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := api.NormalizeFileName(filepath.ToSlash(rel))
		if prefix != "" {
			name = prefix + "/" + name
		}
		*items = append(*items, UploadItem{Path: p, Name: name, Size: fi.Size()})
		return nil
	})
}

// checkUploadNames refuses a name dozo would refuse, two files with the
// same name, and a name that is also the directory of another.
func checkUploadNames(items []UploadItem) error {
	byName := map[string]string{}
	for _, it := range items {
		op := "uploading " + it.Path
		if err := client.ValidateName(it.Name); err != nil {
			return hintError(op, "rename the file, or upload it alone with --name", err)
		}
		if prev, dup := byName[it.Name]; dup {
			return hintError(op, "upload one of them separately with --name", fmt.Errorf("%s and %s would both be named %q", prev, it.Path, it.Name))
		}
		byName[it.Name] = it.Path
	}
	if err := CheckNameDirs(slices.Sorted(maps.Keys(byName))); err != nil {
		return hintError("uploading", "rename one of them", err)
	}
	return nil
}

// CheckNameDirs refuses a set of names in which one is a directory of
// another ("a" and "a/b"): no file system, and no fetch to one, can hold
// both.
func CheckNameDirs(names []string) error {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	for _, n := range names {
		for i := range len(n) {
			if n[i] == '/' && set[n[:i]] {
				return fmt.Errorf("%q is a file and also the directory of %q", n[:i], n)
			}
		}
	}
	return nil
}

// What a batch upload does with a file.
const (
	UploadSend   = "upload" // not in the dataset: send it
	UploadResume = "resume" // an interrupted upload of it is journaled here
	UploadSkip   = "skip"   // the dataset has it, same size and SHA-256
)

// ErrStoredDiffers means the dataset already has a file of that name with
// other contents (or one being uploaded without a journal here).
var ErrStoredDiffers = errors.New("the dataset already has a different file of that name")

// DecideUpload says what a batch upload does with it, given the dataset's
// files by name (stored): resume it if its journal is here (UploadFile
// then checks the journal); skip it if an available file of that name has
// the same size and SHA-256 (the local file is hashed to tell); send it if
// the name is free. A stored file of that name with other contents, or
// one being uploaded without a journal here, is an error wrapping
// ErrStoredDiffers. It changes nothing.
func DecideUpload(dir *client.Dir, broker, ds string, it UploadItem, stored map[string]api.File) (action string, err error) {
	op := "uploading " + it.Path
	if dir != nil {
		abs, err := filepath.Abs(it.Path)
		if err != nil {
			return "", opError(op, err)
		}
		if _, err := os.Lstat(JournalPath(dir, broker, ds, it.Name, abs)); err == nil {
			return UploadResume, nil
		}
	}
	f, ok := stored[it.Name]
	if !ok {
		return UploadSend, nil
	}
	if f.State != api.FileAvailable {
		return "", hintError(op, "wait for that upload to finish, or upload this file under another name with --name",
			fmt.Errorf("%w: %s/%s is being uploaded (%s), and not from here", ErrStoredDiffers, ds, it.Name, f.State))
	}
	differs := func(what string) error {
		return hintError(op, "delete the stored file first, or upload this one under another name with --name",
			fmt.Errorf("%w: %s/%s has another %s", ErrStoredDiffers, ds, it.Name, what))
	}
	if f.Size != it.Size {
		return "", differs("size")
	}
	if f.SHA256 == "" {
		return "", differs("content (the catalog has no SHA-256 to compare)")
	}
	sum, err := hashFile(it.Path)
	if err != nil {
		return "", opError(op, err)
	}
	if sum != f.SHA256 {
		return "", differs("SHA-256")
	}
	return UploadSkip, nil
}

// hashFile returns the hex SHA-256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
