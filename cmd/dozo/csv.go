package main

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// writeGrantsCSV writes grants as RFC 4180 CSV with api.GrantCSVHeader.
// Times are RFC 3339 UTC; empty cells mean "none". The output is the same
// in every language.
func writeGrantsCSV(w io.Writer, gs []api.Grant) error {
	cw := csv.NewWriter(w)
	cw.Write(api.GrantCSVHeader)
	for _, g := range gs {
		revokedAt, superseded := "", ""
		if g.RevokedAt != nil {
			revokedAt = g.RevokedAt.UTC().Format(time.RFC3339)
		}
		if g.SupersededBy != 0 {
			superseded = strconv.FormatInt(g.SupersededBy, 10)
		}
		cw.Write([]string{strconv.FormatInt(g.ID, 10), g.Dataset, g.User, g.ApplicationID, csvSafe(g.Institution),
			g.From, g.Until.UTC().Format(time.DateOnly), g.State, g.GrantedBy, g.GrantedAt.UTC().Format(time.RFC3339),
			csvSafe(g.Reason), g.RevokedBy, revokedAt, csvSafe(g.RevokeReason), superseded, strconv.FormatBool(g.Pending), g.LoginName})
	}
	cw.Flush()
	return cw.Error()
}

// writeAuditCSV writes audit records as RFC 4180 CSV with
// api.AuditCSVHeader, times in RFC 3339 in loc; file_size is the file's
// size in the catalog. Every text cell is defused like the grant
// register's (csvSafe), so a file name or detail that looks like a formula
// is never run by a spreadsheet. The output is the same in every language.
func writeAuditCSV(w io.Writer, rs []api.AuditEntry, loc *time.Location) error {
	cw := csv.NewWriter(w)
	cw.Write(api.AuditCSVHeader)
	for _, r := range rs {
		status := ""
		if r.Status != 0 {
			status = strconv.Itoa(r.Status)
		}
		size := ""
		if r.FileSize != 0 {
			size = strconv.FormatInt(r.FileSize, 10)
		}
		cw.Write([]string{strconv.FormatUint(r.Seq, 10), r.Time.In(loc).Format(time.RFC3339), csvSafe(r.Actor), csvSafe(r.Action),
			csvSafe(r.Dataset), csvSafe(r.File), size, csvSafe(r.Object), csvSafe(r.Result), status, csvSafe(r.Source),
			csvSafe(r.RequestID), csvSafe(r.Detail), r.Hash})
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe defuses spreadsheet formula injection: free text (a reason, an
// institution) starting with = + - @, a tab or a carriage return is prefixed
// with a quote, so a register opened in a spreadsheet never runs it.
func csvSafe(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}
