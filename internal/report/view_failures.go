package report

import (
	"fmt"

	"github.com/trialcat/trialcat/internal/textfmt"
)

func (p *page) failures(r *run) {
	f := r.fail
	p.FailIDColumn = f.idColumn
	if p.FailIDColumn == "" {
		p.FailIDColumn = "ID"
	}
	total := f.total
	classes := f.classes
	if !f.present && r.summary != nil && len(r.summary.FailedByClass) > 0 {
		// No file, but the summary knows the classes.
		classes = newCounter(1000)
		for c, n := range r.summary.FailedByClass {
			classes.counts[c] = n
			classes.rows += n
		}
		total = classes.rows
		p.FailNote = failuresFile + " is missing; the classes come from summary.json."
	}
	p.FailTotal = textfmt.Thousands(total)
	if classes.rows > 0 {
		top, restRows, restValues := classes.top(topValues, nil)
		p.FailClasses = newBarChart("Failures by error class", "", top, restRows, restValues, classes.rows, "#e15759")
	}
	p.Failures = f.first
	if f.total > int64(len(f.first)) {
		p.FailMore = fmt.Sprintf("showing the first %d of %s failures; all of them are in %s", len(f.first), textfmt.Thousands(f.total), failuresFile)
	}
}
