package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/offline"
	"github.com/trialcat/trialcat/internal/record"
)

// cascade answers rec with the first model of --cascade and hands it to the next only while the
// answer is doubtful: a voted field below --confidence, a field that contradicts what the record
// itself states (the registry's own intervention types, purpose and ages), or an answer that
// failed validation. The last model's answer is kept whatever it is.
func (r *runner) cascade(ctx context.Context, rec record.Record) error {
	models := append([]string{r.spec.Model}, r.spec.Cascade...)
	var spent llm.Result
	var reasons []string
	for stage, model := range models {
		req, fail := r.request(rec)
		if fail != nil {
			return fail()
		}
		req.Model = model
		last := stage == len(models)-1
		var cells []string
		var conf map[string]float64
		if r.spec.Votes > 1 {
			votes, err := r.getVotes(ctx, rec, req, stage)
			if err != nil {
				if !last && invalidAnswer(err) {
					reasons = append(reasons, model+": its answers failed validation")
					continue
				}
				return r.settle(ctx, rec.ID, err, r.votesSpent(rec.ID))
			}
			cells, conf = r.majority(votes)
		} else {
			caller := r.callerFor(req)
			key := r.cacheKey(req)
			res, ok := r.fromCache(key, rec.ID)
			if !ok {
				var err error
				if res, err = caller.Call(ctx, req, 0); err != nil {
					spent = spent.Plus(res)
					if !last && invalidAnswer(err) {
						reasons = append(reasons, model+": its answers failed validation")
						continue
					}
					return r.settle(ctx, rec.ID, err, spent)
				}
				r.store(key, res)
			} else {
				res.Attempts = 0
			}
			spent = spent.Plus(res)
			cells = r.schema.Cells(res.Values)
		}
		why := r.doubtful(rec, cells, conf)
		if why == "" || last {
			if r.spec.Votes > 1 {
				spent = r.votesSpent(rec.ID)
			}
			spent.Model = model
			return r.record(rec.ID, spent, answerInfo{cells: cells, decidedBy: model, escalated: strings.Join(reasons, "; ")})
		}
		reasons = append(reasons, model+": "+why)
	}
	return nil // not reached: the last stage always records
}

// invalidAnswer reports an error of answers that did not pass the schema.
func invalidAnswer(err error) bool {
	var le *llm.Error
	return errors.As(err, &le) && (le.Class == llm.ClassSchemaViolation || le.Class == llm.ClassInvalidJSON)
}

// doubtful says why an answer should go to the next model, or "".
func (r *runner) doubtful(rec record.Record, cells []string, conf map[string]float64) string {
	var why []string
	for _, f := range r.schema.Columns() {
		if c, ok := conf[f]; ok && c < r.spec.Confidence {
			why = append(why, fmt.Sprintf("%s confidence %.2f below %.2f", f, c, r.spec.Confidence))
		}
	}
	cols := r.schema.Columns()
	if reg, err := offline.FromRegistry(rec.Data); err == nil {
		for _, f := range offline.RegistryFields {
			i := slices.Index(cols, f)
			if i < 0 || i >= len(cells) {
				continue
			}
			if v := reg[f]; v != "" && v != "unknown" && r.hasValue(f, v) && cells[i] != v {
				why = append(why, fmt.Sprintf("%s %s contradicts the record's own %s", f, cells[i], v))
			}
		}
	}
	return strings.Join(why, ", ")
}

// hasValue reports whether field f of the schema allows v (the registry rules are the default
// schema's: another schema's field of the same name may not share its values).
func (r *runner) hasValue(f, v string) bool {
	for _, p := range r.schema.Properties {
		if p.Name == f {
			return slices.Contains(p.Enum, v)
		}
	}
	return false
}
