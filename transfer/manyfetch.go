package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/storage"
)

// FetchPattern is one reference of a batch fetch: DATASET/NAME (one
// file), DATASET/GLOB (the dataset's files whose names match, as
// path.Match: '*' does not cross '/') or DATASET (all its files).
type FetchPattern struct {
	Dataset string
	Name    string // "" for the whole dataset
}

func (p FetchPattern) String() string {
	if p.Name == "" {
		return p.Dataset
	}
	return p.Dataset + "/" + p.Name
}

// IsGlob reports whether p may name more than one file.
func (p FetchPattern) IsGlob() bool { return p.Name == "" || hasGlob(p.Name) }

// ParseFetchPattern reads one reference: DATASET, DATASET/NAME or
// DATASET/GLOB. The name is put in NFC; an exact name is checked as dozod
// checks names, a glob is checked for syntax.
func ParseFetchPattern(s string) (FetchPattern, error) {
	s = api.NormalizeFileName(s)
	ds, name, _ := strings.Cut(s, "/")
	if err := storage.ValidateID(ds); err != nil {
		return FetchPattern{}, fmt.Errorf("bad file reference %q: want DATASET, DATASET/NAME or DATASET/PATTERN, e.g. JGAD000001/*.cram", s)
	}
	if strings.HasSuffix(s, "/") && name == "" {
		return FetchPattern{Dataset: ds}, nil
	}
	if !strings.Contains(s, "/") {
		return FetchPattern{Dataset: ds}, nil
	}
	if hasGlob(name) {
		if _, err := path.Match(name, ""); err != nil {
			return FetchPattern{}, fmt.Errorf("bad pattern %q: %v", s, err)
		}
		return FetchPattern{Dataset: ds, Name: name}, nil
	}
	if err := client.ValidateName(name); err != nil {
		return FetchPattern{}, err
	}
	return FetchPattern{Dataset: ds, Name: name}, nil
}

// ReadFetchList reads references, one a line, as ParseFetchPattern does:
// blank lines and lines starting with '#' are skipped, spaces at either
// end dropped (names cannot have them). An error names the line.
func ReadFetchList(r io.Reader) ([]FetchPattern, error) {
	var ps []FetchPattern
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		p, err := ParseFetchPattern(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		ps = append(ps, p)
	}
	return ps, sc.Err()
}

// FetchFailure is a reference of a batch fetch that named no file it
// could fetch, and why.
type FetchFailure struct {
	Ref string
	Err error
}

// MatchFetch resolves references to the available files they name, each
// once, in the order of the references (a glob's or dataset's files by
// name). Each dataset is listed once, with list. A name that matches a
// file exactly is that file even if it has glob characters. A reference
// whose dataset cannot be listed (no grant, say) or that names no
// available file is a failure; the other references still resolve.
func MatchFetch(patterns []FetchPattern, list func(ds string) ([]api.File, error)) ([]api.File, []FetchFailure) {
	type listing struct {
		files []api.File
		err   error
	}
	lists := map[string]*listing{}
	seen := map[string]bool{}
	var out []api.File
	var fails []FetchFailure
	for _, p := range patterns {
		l := lists[p.Dataset]
		if l == nil {
			fs, err := list(p.Dataset)
			var avail []api.File
			for _, f := range fs {
				if f.State == api.FileAvailable {
					avail = append(avail, f)
				}
			}
			slices.SortFunc(avail, func(a, b api.File) int { return strings.Compare(a.Name, b.Name) })
			l = &listing{avail, err}
			lists[p.Dataset] = l
		}
		if l.err != nil {
			fails = append(fails, FetchFailure{p.String(), l.err})
			continue
		}
		var hit []api.File
		for _, f := range l.files {
			if f.Name == p.Name {
				hit = []api.File{f}
				break
			}
			if ok, _ := path.Match(p.Name, f.Name); ok || p.Name == "" {
				hit = append(hit, f)
			}
		}
		if len(hit) == 0 {
			why := errors.New("no such file")
			if p.IsGlob() {
				why = errors.New("matches no available file")
			}
			fails = append(fails, FetchFailure{p.String(), why})
			continue
		}
		for _, f := range hit {
			if !seen[f.ID] {
				seen[f.ID] = true
				out = append(out, f)
			}
		}
	}
	return out, fails
}

// OutputPlan is where a batch fetch writes one file.
type OutputPlan struct {
	File api.File
	Path string // DIR/NAME
	// Stored: Path already holds the file (same size and SHA-256 as the
	// catalog's), so it is not fetched again.
	Stored bool
	// Replace: Path holds other contents and --force replaces it.
	Replace bool
}

// PlanOutputs decides, before anything is fetched, where each of files
// goes below dir — dir/NAME, a name's directories created below dir, as
// cp does — and refuses the whole batch, naming every reason, when one of
// them cannot be written: dir missing or not a directory (a symbolic link
// to one is used only when written with a trailing '/', as for one file);
// a path on the way that is a file, a symbolic link or another user's
// directory; a target that is a link or not a regular file; a target that
// exists with other contents, without force. A target that already holds
// the catalog's contents (same size and SHA-256; hashed here, up to
// parallel at once) is planned as Stored. It changes nothing on disk.
func PlanOutputs(ctx context.Context, dir string, files []api.File, force bool, parallel int) ([]OutputPlan, error) {
	op := "fetching into " + dir
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, hintError(op, "create it first (mkdir -p "+dir+")", fmt.Errorf("%s does not exist", dir))
	case err != nil:
		return nil, hintError(op, "choose another output directory", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, unsafePath(op, dir, "is a symbolic link (end it with '/' to write into the directory it links to)")
	case !fi.IsDir():
		return nil, hintError(op, "give a directory with -o when fetching several files", fmt.Errorf("%s is not a directory", dir))
	}
	names := make([]string, len(files))
	from := map[string]string{}
	for i, f := range files {
		names[i] = f.Name
		if prev, dup := from[f.Name]; dup {
			return nil, hintError(op, "fetch them into different directories",
				fmt.Errorf("%s and %s/%s would both be written to %s", prev, f.Dataset, f.Name, filepath.Join(dir, filepath.FromSlash(f.Name))))
		}
		from[f.Name] = f.Dataset + "/" + f.Name
	}
	if err := CheckNameDirs(names); err != nil {
		return nil, hintError(op, "fetch them into different directories", err)
	}
	plans := make([]OutputPlan, len(files))
	problems := make([]error, len(files))
	for i, f := range files {
		plans[i] = OutputPlan{File: f, Path: filepath.Join(dir, filepath.FromSlash(f.Name))}
		if err := client.ValidateName(f.Name); err != nil {
			problems[i] = err
		} else {
			problems[i] = checkParents(dir, f.Name)
		}
	}
	errs := RunBatch(ctx, len(plans), parallel, func(ctx context.Context, i int) error {
		if problems[i] != nil {
			return problems[i]
		}
		return planTarget(&plans[i], force)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, hintError(op, "nothing was fetched; move those paths away, or pass --force to replace files that differ", err)
	}
	return plans, nil
}

// checkParents says why name's directories below dir cannot be used, or
// nil: each that exists must be a directory (not a link to one) of ours
// or root's; those missing will be made.
func checkParents(dir, name string) error {
	parts := strings.Split(name, "/")
	p := dir
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // made by MakeParents, with the rest
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return &UnsafePathError{Path: p, Why: "is a symbolic link"}
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
		if why := checkDirOwner(fi); why != "" {
			return &UnsafePathError{Path: p, Why: why}
		}
	}
	return nil
}

// planTarget looks at what is at pl.Path now.
func planTarget(pl *OutputPlan, force bool) error {
	fi, err := os.Lstat(pl.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return &UnsafePathError{Path: pl.Path, Why: "is a symbolic link"}
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s exists and is %s", pl.Path, fileKind(fi.Mode().Type()))
	}
	if fi.Size() == pl.File.Size && pl.File.SHA256 != "" {
		sum, err := hashFile(pl.Path)
		if err != nil {
			return err
		}
		if sum == pl.File.SHA256 {
			pl.Stored = true
			return nil
		}
	}
	if !force {
		return fmt.Errorf("%s exists and differs from %s/%s", pl.Path, pl.File.Dataset, pl.File.Name)
	}
	pl.Replace = true
	return nil
}
