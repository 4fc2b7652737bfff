package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
)

// agentLatency is the fake's latency in the agent scenario: a base plus a cost per prompt token,
// so that a turn that re-sends a long conversation takes longer, drawn per record.
var agentLatency = fakeai.LatencyModel{Base: 80 * time.Millisecond, PerPromptToken: 20 * time.Microsecond, Sigma: 0.3, PerRecord: true}

// agentQuartile is one eligibility-length quartile's per-record means, one-shot against agent.
type agentQuartile struct {
	Quartile       int     `json:"quartile"`
	Records        int     `json:"records"`
	WordsMin       int     `json:"words_min"`
	WordsMax       int     `json:"words_max"`
	OneShotIn      float64 `json:"one_shot_prompt_tokens"`
	AgentIn        float64 `json:"agent_prompt_tokens"`
	OneShotOut     float64 `json:"one_shot_completion_tokens"`
	AgentOut       float64 `json:"agent_completion_tokens"`
	AgentTurns     float64 `json:"agent_turns"`
	OneShotMS      float64 `json:"one_shot_ms"`
	AgentMS        float64 `json:"agent_ms"`
	AgentFallbacks int     `json:"agent_fallbacks"`
}

// agentResult is the agent scenario's outcome.
type agentResult struct {
	Records    int             `json:"records"`
	Quartiles  []agentQuartile `json:"quartiles"`
	Efficiency []agentEff      `json:"efficiency"`
}

// agentEff is one run's parallel efficiency: Σ server service time over workers × wall.
type agentEff struct {
	Mode       string  `json:"mode"`
	Workers    int     `json:"workers"`
	Records    int     `json:"records"`
	Requests   int     `json:"requests"`
	WallS      float64 `json:"wall_s"`
	ServiceS   float64 `json:"service_s"`
	Efficiency float64 `json:"efficiency"`
	// CPU seconds of the coordinator, of its workers, and of the bench process (the fake).
	CoordCPUS, WorkersCPUS, FakeCPUS float64
}

// agentBench compares one-shot and --agent runs of the bundled real records by the length of
// their eligibility criteria, then measures an agent run's efficiency at 20 workers.
func (b *bench) agentBench(ctx context.Context) (any, error) {
	n, big := 100, 400
	if b.cfg.Quick {
		n, big = 40, 80
	}
	input, err := realInput(b.cfg.Sample, b.work, n)
	if err != nil {
		return nil, err
	}
	words, err := eligibilityWords(input)
	if err != nil {
		return nil, err
	}
	res := &agentResult{Records: n}
	rows := map[string]map[string]results.Row{}
	for _, mode := range []string{"one-shot", "agent"} {
		f, err := startFake(fakeai.Config{Seed: 5, Latency: agentLatency}, false)
		if err != nil {
			return nil, err
		}
		args := []string{"--workers", "10", "--batches", "auto"}
		if mode == "agent" {
			args = append(args, "--agent")
		}
		cpu0 := selfCPU()
		run, err := b.coordinator(ctx, "agent-"+mode, input, f.URL(), 10*time.Minute, args...)
		srv := f.stats()
		f.stop()
		if err != nil {
			return nil, err
		}
		res.Efficiency = append(res.Efficiency, agentEff{Mode: mode, Workers: 10, Records: n, Requests: srv.Requests, WallS: run.Proc.WallS,
			ServiceS: srv.ServiceSumS, Efficiency: srv.ServiceSumS / 10 / run.Proc.WallS,
			CoordCPUS: run.Proc.SelfCPUS, WorkersCPUS: run.Proc.ChildrenCPUS, FakeCPUS: selfCPU() - cpu0})
		rows[mode] = map[string]results.Row{}
		if _, err := results.ReadFile(rundir.New(run.Out).FinalResults(), func(_ results.Layout, r results.Row) error {
			rows[mode][r.ID] = r
			return nil
		}); err != nil {
			return nil, err
		}
	}
	ids := make([]string, 0, len(words))
	for id := range words {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return words[ids[i]] < words[ids[j]] || words[ids[i]] == words[ids[j]] && ids[i] < ids[j]
	})
	for q := 0; q < 4; q++ {
		part := ids[q*len(ids)/4 : (q+1)*len(ids)/4]
		aq := agentQuartile{Quartile: q + 1, Records: len(part)}
		if len(part) == 0 {
			continue
		}
		aq.WordsMin, aq.WordsMax = words[part[0]], words[part[len(part)-1]]
		for _, id := range part {
			o, a := rows["one-shot"][id], rows["agent"][id]
			aq.OneShotIn += float64(o.InputTokens)
			aq.OneShotOut += float64(o.OutputTokens)
			aq.OneShotMS += float64(o.LatencyMS)
			aq.AgentIn += float64(a.InputTokens)
			aq.AgentOut += float64(a.OutputTokens)
			aq.AgentMS += float64(a.LatencyMS)
			aq.AgentTurns += float64(a.Turns)
			if _, fb := results.ParseToolCalls(a.ToolCalls); fb {
				aq.AgentFallbacks++
			}
		}
		k := float64(len(part))
		aq.OneShotIn, aq.OneShotOut, aq.OneShotMS = aq.OneShotIn/k, aq.OneShotOut/k, aq.OneShotMS/k
		aq.AgentIn, aq.AgentOut, aq.AgentMS, aq.AgentTurns = aq.AgentIn/k, aq.AgentOut/k, aq.AgentMS/k, aq.AgentTurns/k
		res.Quartiles = append(res.Quartiles, aq)
	}
	// 20 workers with agent records in flight.
	bigInput, err := realInput(b.cfg.Sample, b.work, big)
	if err != nil {
		return nil, err
	}
	for _, mode := range []string{"one-shot", "agent"} {
		f, err := startFake(fakeai.Config{Seed: 6, Latency: agentLatency}, false)
		if err != nil {
			return nil, err
		}
		args := []string{"--workers", "20", "--batches", "auto"}
		if mode == "agent" {
			args = append(args, "--agent")
		}
		cpu0 := selfCPU()
		run, err := b.coordinator(ctx, "agent-eff-"+mode, bigInput, f.URL(), 15*time.Minute, args...)
		srv := f.stats()
		f.stop()
		if err != nil {
			return nil, err
		}
		res.Efficiency = append(res.Efficiency, agentEff{Mode: mode, Workers: 20, Records: big, Requests: srv.Requests, WallS: run.Proc.WallS,
			ServiceS: srv.ServiceSumS, Efficiency: srv.ServiceSumS / 20 / run.Proc.WallS,
			CoordCPUS: run.Proc.SelfCPUS, WorkersCPUS: run.Proc.ChildrenCPUS, FakeCPUS: selfCPU() - cpu0})
	}
	b.agentTables(res)
	return res, nil
}

func (b *bench) agentTables(res *agentResult) {
	fmt.Fprintf(b.out, "## Agent against one-shot, by eligibility-criteria length (%d real records, 10 workers, fakeai %s + %s a prompt token, sigma %.1f)\n\n",
		res.Records, agentLatency.Base, agentLatency.PerPromptToken, agentLatency.Sigma)
	var rows [][]string
	for _, q := range res.Quartiles {
		rows = append(rows, []string{itoa(q.Quartile), fmt.Sprintf("%d-%d", q.WordsMin, q.WordsMax), itoa(q.Records),
			f1(q.OneShotIn), f1(q.AgentIn), f1(q.OneShotOut), f1(q.AgentOut), f2(q.AgentTurns), f1(q.OneShotMS), f1(q.AgentMS), itoa(q.AgentFallbacks)})
	}
	table(b.out, []string{"quartile", "criteria words", "records", "prompt tok one-shot", "prompt tok agent", "completion one-shot", "completion agent",
		"agent turns", "ms one-shot", "ms agent (all turns)", "agent fallbacks"}, rows)
	fmt.Fprintf(b.out, "\n## Run efficiency with agent records in flight (Σ server service time ÷ workers ÷ wall)\n\n")
	rows = nil
	for _, e := range res.Efficiency {
		busy := (e.CoordCPUS + e.WorkersCPUS + e.FakeCPUS) / (e.WallS * float64(runtime.NumCPU()))
		rows = append(rows, []string{e.Mode, itoa(e.Workers), itoa(e.Records), itoa(e.Requests), f1(e.WallS), f1(e.ServiceS), pct(e.Efficiency),
			f1(e.WorkersCPUS * 1000 / float64(e.Requests)), f1(e.FakeCPUS * 1000 / float64(e.Requests)), pct(busy)})
	}
	table(b.out, []string{"mode", "workers", "records", "requests", "wall s", "service s", "efficiency", "worker CPU ms/request", "fake CPU ms/request", "CPU busy"}, rows)
	fmt.Fprintln(b.out)
}

// eligibilityWords counts the words of each record's eligibility criteria in a JSON Lines file.
func eligibilityWords(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var st struct {
			ProtocolSection struct {
				IdentificationModule struct {
					NCTID string `json:"nctId"`
				} `json:"identificationModule"`
				EligibilityModule struct {
					Criteria string `json:"eligibilityCriteria"`
				} `json:"eligibilityModule"`
			} `json:"protocolSection"`
		}
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			return nil, err
		}
		out[st.ProtocolSection.IdentificationModule.NCTID] = len(strings.Fields(st.ProtocolSection.EligibilityModule.Criteria))
	}
	return out, sc.Err()
}
