package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

func checksumsCommand() *cli.Command {
	return &cli.Command{
		Name:      "checksums",
		Usage:     "print a dataset's checksums from the catalog, for md5sum -c / sha256sum -c",
		ArgsUsage: "DATASET",
		Description: "Prints one line per file, \"HASH  NAME\", as sha256sum (default) or md5sum\n" +
			"(--md5) would, names with a newline or backslash escaped the way coreutils\n" +
			"escapes them, so the list checks files fetched into one directory. The\n" +
			"checksums are those computed on the submitter's machine at upload. Files\n" +
			"without checksums (not yet complete) are left out, with a note on stderr.\n\n" +
			"EXAMPLES:\n" +
			"   dozo checksums JGAD000001 > JGAD000001.sha256\n" +
			"   cd ~/data && sha256sum -c JGAD000001.sha256\n" +
			"   dozo checksums JGAD000001 --md5 | md5sum -c -",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "md5", Usage: "MD5 (md5sum) instead of SHA-256"},
			&cli.BoolFlag{Name: "sha256", Usage: "SHA-256 (sha256sum; the default)"},
			jsonFlag,
		},
		Action: runChecksums,
	}
}

func runChecksums(c *cli.Context) error {
	id, err := datasetArg(c)
	if err != nil {
		return err
	}
	if c.Bool("md5") && c.Bool("sha256") {
		return badArg(c, i18n.New("--md5 and --sha256 do not combine; run it twice"))
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	fs, err := cl.ListFiles(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("listing files of %s", id), Err: err}
	}
	md5 := c.Bool("md5")
	var missing []string
	type row struct {
		Name string `json:"name"`
		Sum  string `json:"checksum"`
	}
	rows := []row{}
	for _, f := range fs {
		sum := f.SHA256
		if md5 {
			sum = f.MD5
		}
		if sum == "" {
			missing = append(missing, f.Name)
			continue
		}
		rows = append(rows, row{f.Name, sum})
	}
	if len(missing) > 0 {
		notice(c)("%s without checksums left out (%s)", plural(len(missing), "file", "files"), strings.Join(missing, ", "))
	}
	if c.Bool("json") {
		return printJSON(stdout(c), rows)
	}
	for _, r := range rows {
		if err := writeSumLine(stdout(c), r.Sum, r.Name); err != nil {
			return err
		}
	}
	return nil
}

// writeSumLine writes one line of sha256sum/md5sum output in text mode,
// "HASH  NAME". A name holding a backslash, newline or carriage return
// is escaped (\\, \n, \r) and the line starts with a backslash, as GNU
// coreutils does, so -c reads the name back exactly.
func writeSumLine(w io.Writer, sum, name string) error {
	prefix := ""
	if strings.ContainsAny(name, "\\\n\r") {
		prefix = "\\"
		name = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r").Replace(name)
	}
	_, err := fmt.Fprintf(w, "%s%s  %s\n", prefix, sum, name)
	return err
}
