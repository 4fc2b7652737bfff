package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/trialcat/trialcat/internal/agent"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/textfmt"
	"github.com/trialcat/trialcat/internal/tokens"
)

// agentRange is what an agent run over the input would take, between two bounds: every loop
// submitting on its first turn (the overview alone read) and every loop reading the whole record,
// a page a turn, the conversation sent again with each turn.
type agentRange struct {
	records                  int64
	lowIn, highIn            int64
	lowOut, highOut          int64
	lowTurns, highTurns      int64
	lowCost, highCost        float64
	costKnown                bool
	meanRecord, meanOverview int64
}

// estimateAgent counts the agent's range over the input (estimate --agent).
func estimateAgent(ctx context.Context, opts *Options, ins instructions, prices *modelinfo.PriceTable, outPerTurn int) (agentRange, error) {
	counter := tokens.ForModel(opts.Model)
	loop, err := agent.New(agent.Config{Schema: ins.schema, MaxTurns: opts.AgentMaxTurns, MaxTokens: opts.AgentMaxTokens})
	if err != nil {
		return agentRange{}, err
	}
	defs, _ := json.Marshal(loop.Tools())
	toolTokens := int64(counter.Count(string(defs)))
	answer := int64(tokens.AnswerTokens(ins.schema))
	r, err := input.Open(opts.Input, input.Options{IDField: opts.IDField, Dedupe: opts.Dedupe})
	if err != nil {
		return agentRange{}, err
	}
	defer r.Close()
	rg := agentRange{costKnown: true}
	var sumRecord, sumOverview int64
	for {
		if err := ctx.Err(); err != nil {
			return rg, err
		}
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rg, err
		}
		msgs, err := ins.agentTmpl.Render(rec)
		if err != nil {
			return rg, err
		}
		ar, err := loop.Prepare(rec, loop.System(msgs.System), msgs.User)
		if err != nil {
			return rg, err
		}
		base := toolTokens
		for _, m := range ar.Messages() {
			base += int64(counter.Count(m.Content) + tokens.PerMessage)
		}
		whole := int64(ar.Tokens())
		rg.records++
		sumRecord += whole
		sumOverview += base
		// Low: one turn, the answer submitted at once.
		lowIn, lowOut := base, answer+int64(outPerTurn)
		// High: a page of the record a turn until all of it is read (within the turn limit),
		// each turn sending the conversation so far, then the submit.
		pages := (whole + agent.DefaultReadTokens - 1) / agent.DefaultReadTokens
		turns := min(pages+1, int64(loop.MaxTurns()))
		page := whole / max(turns-1, 1)
		highIn := turns*base + page*turns*(turns-1)/2
		highOut := turns*int64(outPerTurn) + answer
		if opts.AgentMaxTokens > 0 && highIn+highOut > opts.AgentMaxTokens {
			highIn = max(opts.AgentMaxTokens-highOut, lowIn)
		}
		rg.lowIn, rg.lowOut, rg.highIn, rg.highOut = rg.lowIn+lowIn, rg.lowOut+lowOut, rg.highIn+highIn, rg.highOut+highOut
		rg.lowTurns++
		rg.highTurns += turns
	}
	if rg.records > 0 {
		rg.meanRecord, rg.meanOverview = sumRecord/rg.records, sumOverview/rg.records
	}
	var ok1, ok2 bool
	rg.lowCost, ok1 = prices.Cost(opts.Model, rg.lowIn, 0, rg.lowOut)
	rg.highCost, ok2 = prices.Cost(opts.Model, rg.highIn, 0, rg.highOut)
	rg.costKnown = ok1 && ok2
	return rg, nil
}

// print writes the range.
func (rg agentRange) print(w io.Writer, model string) {
	n := textfmt.Thousands
	fmt.Fprintf(w, "\nagent (--agent), %s records: a record is %s tokens on average; its first request (instructions, tools, overview and section table) %s\n",
		n(rg.records), n(rg.meanRecord), n(rg.meanOverview))
	fmt.Fprintf(w, "  from  %s requests, %s prompt + %s completion tokens (every record submitted on its first turn)\n", n(rg.lowTurns), n(rg.lowIn), n(rg.lowOut))
	fmt.Fprintf(w, "  to    %s requests, %s prompt + %s completion tokens (every record read whole, a page a turn)\n", n(rg.highTurns), n(rg.highIn), n(rg.highOut))
	if rg.costKnown {
		fmt.Fprintf(w, "  cost  $%.4f to $%.4f with %s, before provider prompt caching (the instructions and tools are the same prefix on every turn)\n", rg.lowCost, rg.highCost, model)
	} else {
		fmt.Fprintf(w, "  cost  unknown: the price of %s is not in the table (add it with --prices)\n", model)
	}
}
