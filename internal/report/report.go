package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"

	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/safefile"
)

//go:embed report.html.tmpl
var pageTemplate string

// Write reads the run folder dir (summary.json, final_results.csv, final_failures.csv and the
// worker_N_log.txt files, each optional) and atomically writes dir/report.html. It fails only
// when dir cannot be read or report.html cannot be written; problems with the files it reads are
// shown in the page.
func Write(dir string) error {
	r, err := collect(dir)
	if err != nil {
		return err
	}
	tmpl, err := parseTemplate()
	if err != nil {
		return err
	}
	p := build(r)
	return safefile.Write(rundir.New(dir).Report(), 0o644, func(w io.Writer) error {
		return tmpl.Execute(w, p)
	})
}

func parseTemplate() (*template.Template, error) {
	t, err := template.New("report").Parse(pageTemplate)
	if err != nil {
		return nil, fmt.Errorf("report template: %w", err)
	}
	return t, nil
}
