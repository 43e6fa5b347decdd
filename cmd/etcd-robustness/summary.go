package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/etcd-robustness/etcd-robustness/report"
)

// summaryCmd lists many runs with their verdicts, faults and first
// violation, as a table on stdout and as a static HTML page. A corrupt or
// incomplete report gets one line that names the file, and exit status 2.
func summaryCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("summary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("html", "summary.html", "where to write the HTML page (empty: none)")
	scale := fs.Bool("scale", false, "print each report's scale figures instead (sizes, stage times, the check's share of the traffic time, peak RSS, report size)")
	if err := fs.Parse(args); err != nil {
		return exitSetup
	}
	if fs.NArg() == 0 {
		return usageErr(stderr, errors.New("usage: etcd-robustness summary [--html FILE] [--scale] DIR... (report directories, or directories of them)"))
	}
	dirs, err := report.FindReports(fs.Args())
	if err != nil {
		return usageErr(stderr, err)
	}
	if *scale {
		return scaleFigures(dirs, stdout, stderr)
	}
	var rows []report.Row
	code := exitPass
	for _, d := range dirs {
		r, err := report.ReadRow(d)
		if err != nil {
			usageErr(stderr, err)
			code = exitSetup
			continue
		}
		rows = append(rows, r)
	}
	report.SortRows(rows)
	if err := report.WriteTable(stdout, rows); err != nil {
		return usageErr(stderr, err)
	}
	fmt.Fprintln(stdout)
	if err := report.WriteDraws(stdout, report.Draws(rows)); err != nil {
		return usageErr(stderr, err)
	}
	fmt.Fprintln(stdout)
	if err := report.WriteCoverage(stdout, report.Coverage(rows)); err != nil {
		return usageErr(stderr, err)
	}
	if *out != "" {
		if err := report.WriteSummaryHTML(*out, rows); err != nil {
			return usageErr(stderr, err)
		}
		fmt.Fprintf(stdout, "%d runs; page: %s\n", len(rows), *out)
	}
	return code
}

// scaleFigures prints the scale figures of each report's summary.json.
func scaleFigures(dirs []string, stdout, stderr io.Writer) int {
	code := exitPass
	for _, d := range dirs {
		sum, err := report.LoadSummary(d)
		if err == nil {
			err = report.WriteScaleFigures(stdout, d, sum)
		}
		if err != nil {
			usageErr(stderr, err)
			code = exitSetup
		}
	}
	return code
}
