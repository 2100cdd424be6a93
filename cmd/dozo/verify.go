package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/transfer"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a local copy of a stored file against the catalog's checksums",
		ArgsUsage: "DATASET/NAME LOCALFILE",
		Description: "Hashes LOCALFILE and compares its size and SHA-256 (and MD5 with --md5)\n" +
			"with what the catalog records for DATASET/NAME. Nothing is fetched. Exits 0\n" +
			"when everything compared matches, 1 on a mismatch or any error.\n\n" +
			"EXAMPLES:\n" +
			"   dozo verify JGAD000001/sample1.bam ./sample1.bam\n" +
			"   dozo verify JGAD000001/sample1.bam ./sample1.bam --md5 --json",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "md5", Usage: "also compare the MD5 (JGA download lists use MD5)"},
			jsonFlag,
		},
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	if err := needArgs(c, 2, "DATASET/NAME and LOCALFILE"); err != nil {
		return err
	}
	ds, name, err := client.ParseFileRef(c.Args().Get(0))
	if err != nil {
		return badArg(c, err)
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	r, err := transfer.VerifyLocal(c.Context, cl, ds, name, c.Args().Get(1), c.Bool("md5"))
	if err != nil {
		return err
	}
	w := stdout(c)
	if c.Bool("json") {
		if err := printJSON(w, r); err != nil {
			return err
		}
	} else if r.Match {
		i18n.Fprintf(w, "OK %s matches %s/%s (%s)\n", r.Path, r.Dataset, r.Name, strings.Join(r.Checked, ", "))
	}
	if r.Match {
		return nil
	}
	var why []string
	for _, m := range r.Mismatches {
		switch m {
		case "size":
			why = append(why, i18n.Sprintf("size is %d bytes, the catalog says %d", r.Size, r.Want))
		case "sha256":
			why = append(why, i18n.Sprintf("SHA-256 is %s, the catalog says %s", r.SHA256, r.CatalogSHA256))
		case "md5":
			why = append(why, i18n.Sprintf("MD5 is %s, the catalog says %s", r.MD5, r.CatalogMD5))
		}
	}
	return &client.Error{Op: i18n.Sprintf("verifying %s against %s/%s", r.Path, r.Dataset, r.Name),
		Err:  fmt.Errorf("%w: %s", transfer.ErrChecksum, strings.Join(why, "; ")),
		Hint: i18n.Sprintf("the copy differs from the stored file: fetch it again ('dozo fetch %s/%s')", r.Dataset, r.Name)}
}

// checksumNames spells the whole-file checksums a fetch checked for its
// summary line: "SHA-256", "SHA-256 and MD5".
func checksumNames(checked []string) string {
	var out []string
	for _, s := range checked {
		switch s {
		case "sha256":
			out = append(out, "SHA-256")
		case "md5":
			out = append(out, "MD5")
		}
	}
	if len(out) == 0 {
		return "no whole-file checksum"
	}
	return strings.Join(out, " and ")
}
