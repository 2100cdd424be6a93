package metrics

import (
	"context"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Metrics read at scrape time.
var (
	buildInfo  = desc("dozo_build_info", "dozod's version.", "version")
	startTime  = desc("dozo_start_time_seconds", "When dozod started, Unix time.")
	goroutines = desc("dozo_goroutines", "Goroutines in dozod.")

	targetUp         = desc("dozo_target_up", "1 if the storage target answered its last probe.", "target", "domain")
	targetLastChange = desc("dozo_target_last_change_seconds", "When the target last went up or down (or dozod started), Unix time.", "target", "domain")
	targetFailures   = desc("dozo_target_failures_total", "Failed probes and request-path failures of the target.", "target", "domain")

	catalogUp        = desc("dozo_catalog_up", "1 if the catalog answered this scrape.")
	catalogDatasets  = desc("dozo_catalog_datasets", "Datasets in the catalog.")
	catalogFiles     = desc("dozo_catalog_files", "Files in the catalog by state.", "state")
	catalogFileBytes = desc("dozo_catalog_file_bytes", "Plaintext bytes of the catalog's files by state.", "state")

	scrubRunning       = desc("dozo_scrub_running", "1 while a scrub runs.")
	scrubFilesTotal    = desc("dozo_scrub_files_total", "Files the running scrub covers.")
	scrubFilesDone     = desc("dozo_scrub_files_done", "Files the running scrub has finished.")
	scrubRuns          = desc("dozo_scrub_runs_completed_total", "Scrub runs ended since dozod started.")
	scrubPieces        = desc("dozo_scrub_pieces_checked_total", "Pieces checked by scrubs since dozod started.")
	scrubBytes         = desc("dozo_scrub_bytes_checked_total", "Piece bytes read by deep scrubs since dozod started.")
	scrubFindings      = desc("dozo_scrub_findings_total", "Bad pieces found by scrubs, by kind.", "kind")
	scrubRepaired      = desc("dozo_scrub_repaired_total", "Pieces rebuilt and rewritten by repair scrubs.")
	scrubUnrecoverable = desc("dozo_scrub_unrecoverable_total", "Segments found with more than m bad pieces.")
	scrubLastEnd       = desc("dozo_scrub_last_end_seconds", "When the last scrub run ended, Unix time (0: none yet).")
)

// scrapeCollector reads the values that live elsewhere (the catalog,
// target health, the scrubber) when a scrape asks for them, within the
// scrape's context.
type scrapeCollector struct {
	ctx context.Context
	src *Sources
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfo, startTime, goroutines, targetUp, targetLastChange, targetFailures,
		catalogUp, catalogDatasets, catalogFiles, catalogFileBytes,
		scrubRunning, scrubFilesTotal, scrubFilesDone, scrubRuns, scrubPieces, scrubBytes, scrubFindings,
		scrubRepaired, scrubUnrecoverable, scrubLastEnd} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(buildInfo, 1, c.src.Version)
	gauge(startTime, unix(c.src.Started))
	gauge(goroutines, float64(runtime.NumGoroutine()))

	if c.src.Targets != nil {
		for _, ts := range c.src.Targets() {
			gauge(targetUp, bool01(ts.Up), ts.ID, ts.Domain)
			gauge(targetLastChange, unix(ts.Since), ts.ID, ts.Domain)
			counter(targetFailures, float64(ts.Failures), ts.ID, ts.Domain)
		}
	}

	if c.src.Catalog != nil {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		stats, err := c.src.Catalog(ctx)
		cancel()
		if err != nil {
			c.src.Log.Warn("metrics: reading catalog statistics failed", "error", err)
			gauge(catalogUp, 0)
		} else {
			gauge(catalogUp, 1)
			gauge(catalogDatasets, float64(stats.Datasets))
			for _, st := range stats.States {
				gauge(catalogFiles, float64(st.Files), st.State)
				gauge(catalogFileBytes, float64(st.Bytes), st.State)
			}
		}
	}

	if c.src.Scrub != nil {
		sc := c.src.Scrub()
		gauge(scrubRunning, bool01(sc.Running))
		gauge(scrubFilesTotal, float64(sc.FilesTotal))
		gauge(scrubFilesDone, float64(sc.FilesDone))
		counter(scrubRuns, float64(sc.RunsCompleted))
		counter(scrubPieces, float64(sc.PiecesCheckedTotal))
		counter(scrubBytes, float64(sc.BytesCheckedTotal))
		for _, kind := range FindingKinds {
			counter(scrubFindings, float64(sc.FindingsTotal[kind]), kind)
		}
		counter(scrubRepaired, float64(sc.RepairedTotal))
		counter(scrubUnrecoverable, float64(sc.UnrecoverableTotal))
		gauge(scrubLastEnd, unix(sc.LastRunEnd))
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unix is t in Unix seconds. The zero time (none yet) reads as 0: its
// UnixNano is out of range and would read as a date in 1754.
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
