package main

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/region"
	"github.com/dozo-vault/dozo/transfer"
)

// regionFlags are fetch's flags for region fetches.
func regionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: "region", Value: &regionList{}, Usage: "only the records overlapping `REF[:FROM-TO]` (1-based, inclusive; repeatable) of a BAM, CRAM, VCF.gz or BCF, as a file of the same format"},
		&cli.StringFlag{Name: "index", Usage: "with --region: the index file's `NAME` in the dataset", DefaultText: "FILE.bai, FILE.csi, FILE.crai, FILE.tbi, ... whichever exists"},
	}
}

// regionList collects --region values as given: samtools regions have
// thousands commas (chr1:1,000,000-2,000,000), so a string slice flag,
// which splits at commas, does not do.
type regionList []string

func (l *regionList) Set(s string) error { *l = append(*l, s); return nil }
func (l *regionList) String() string     { return strings.Join(*l, " ") }

// regionHelp is fetch's help text about regions.
const regionHelp = "--region REF:FROM-TO writes only the records of a BAM, CRAM, bgzipped VCF or\n" +
	"BCF that overlap the regions, as a valid file of the same format, reading the\n" +
	"index (a file of the same dataset: FILE.bai, FILE.crai, FILE.tbi, FILE.csi...,\n" +
	"or --index NAME) and then only the segments that hold the header and those\n" +
	"records. CRAM needs its reference to decode, as usual (samtools -T ref.fa).\n"

type regionOut struct {
	Dataset  string   `json:"dataset"`
	Name     string   `json:"name"`
	FileID   string   `json:"file_id"`
	Index    string   `json:"index"`
	Format   string   `json:"format"`
	Regions  []string `json:"regions"`
	Output   string   `json:"output"`
	Size     int64    `json:"size"`
	Written  int64    `json:"written_bytes"`
	Planned  int64    `json:"planned_bytes"`
	Read     int64    `json:"piece_bytes_read"`
	Segments int64    `json:"segments_read"`
	Degraded int64    `json:"segments_degraded"`
	Seconds  float64  `json:"seconds"`

	DegradedTargets []string `json:"degraded_targets"`
}

// runRegionFetch is fetch with --region.
func runRegionFetch(c *cli.Context, ds, name string) error {
	if c.IsSet("range") || c.Bool("raw") {
		return badArg(c, i18n.New("--region does not combine with --range or --raw"))
	}
	var regions []region.Region
	list, _ := c.Generic("region").(*regionList)
	if list == nil {
		list = &regionList{}
	}
	for _, s := range *list {
		r, err := region.ParseRegion(s)
		if err != nil {
			return badArg(c, err)
		}
		regions = append(regions, r)
	}
	if len(regions) == 0 {
		return badArg(c, i18n.New("--index goes with --region"))
	}
	if _, err := region.FormatOf(name); err != nil {
		return badArg(c, err)
	}
	if err := checkConcurrency(c); err != nil {
		return err
	}
	cl, d, err := newClient(c)
	if err != nil {
		return err
	}
	id, err := d.Identity()
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("fetching %s/%s", ds, name), Err: err}
	}
	out := c.String("output")
	if out == "-" && !c.Bool("force") && isTerminal(stdout(c)) {
		return badArg(c, i18n.New("standard output is a terminal; pipe it (e.g. | samtools view -) or write a file with -o PATH (--force sends it anyway)"))
	}
	degraded := &degradedStorage{say: notice(c), debug: c.Bool("debug")}
	res, err := transfer.FetchRegions(c.Context, cl, transfer.RegionOptions{
		Dataset: ds, Name: name, Index: c.String("index"), Regions: regions,
		Output: out, Stdout: stdout(c), Force: c.Bool("force"), Identity: id, Concurrency: c.Int("concurrency"),
		OnDegraded: degraded.segment,
	})
	if err != nil {
		return err
	}
	var names []string
	for _, r := range regions {
		names = append(names, r.String())
	}
	o := regionOut{
		Dataset: ds, Name: name, FileID: res.File.ID, Index: res.Index.Name, Format: res.Format.String(),
		Regions: names, Output: out, Size: res.File.Size, Written: res.Bytes, Planned: res.Planned,
		Read: res.Stats.PieceBytes, Segments: res.Stats.SegmentsRead, Degraded: res.Stats.SegmentsDegraded,
		Seconds: res.Elapsed.Seconds(), DegradedTargets: degraded.targets(),
	}
	o.Output = res.Output // a directory's file, as resolved
	w := stdout(c)
	dest := res.Output
	if out == "-" {
		w, dest = stderr(c), "standard output"
	}
	if c.Bool("json") {
		return printJSON(w, o)
	}
	i18n.Fprintf(w, "fetched %s of %s/%s -> %s (%s %s in %s; read %s of the file's %s through %s; verified: pieces and chunks)\n",
		strings.Join(names, ", "), ds, name, dest, units.FormatSize(res.Bytes), res.Format, res.Elapsed.Round(10*time.Millisecond),
		units.FormatSize(res.Planned), units.FormatSize(res.File.Size), res.Index.Name)
	if res.Stats.SegmentsDegraded > 0 {
		i18n.Fprintf(w, "  note: %d segment(s) needed parity (%d bad piece(s)); the data is intact\n", res.Stats.SegmentsDegraded, res.Stats.PiecesBad)
	}
	return nil
}
