package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/testkit"
)

// sample reads the first n bundled real records.
func sample(t testing.TB, n int) []record.Record {
	t.Helper()
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var out []record.Record
	for sc.Scan() && len(out) < n {
		data := append([]byte(nil), sc.Bytes()...)
		m, err := record.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, record.Record{ID: record.IDOf(m, ""), Data: data})
	}
	return out
}

// harness is an Agent over the default schema talking to fakeai through the real SDK.
type harness struct {
	agent  *Agent
	server *fakeai.Server
	caller *llm.Caller
	tmpl   *prompt.Template
}

func newHarness(t *testing.T, cfg fakeai.Config, acfg Config) *harness {
	t.Helper()
	srv, base := testkit.StartFake(t, cfg)
	sch := taxonomy.MustSchema()
	acfg.Schema = sch
	a, err := New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	p := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: base, APIKey: testkit.Key, Schema: sch.StrictJSON()})
	tmpl, err := prompt.Parse("agent.tmpl", taxonomy.AgentPrompt())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{agent: a, server: srv, caller: &llm.Caller{Provider: p, MaxAttempts: 3}, tmpl: tmpl}
}

func (h *harness) run(t *testing.T, rec record.Record) (Outcome, []Step, error) {
	t.Helper()
	msgs, err := h.tmpl.Render(rec)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.agent.Prepare(rec, h.agent.System(msgs.System), msgs.User)
	if err != nil {
		t.Fatal(err)
	}
	var steps []Step
	out, err := h.agent.Run(context.Background(), r, func(ctx context.Context, m []llm.Message, turn int) (llm.Result, error) {
		return h.caller.Call(ctx, llm.Request{RecordID: rec.ID, Model: "gpt-5-mini", Messages: m, Tools: h.agent.Tools()}, 0)
	}, func(s Step) { steps = append(steps, s) })
	return out, steps, err
}

func TestSectionsOfARealStudy(t *testing.T) {
	rec := sample(t, 1)[0]
	secs, err := Sections(rec.Data)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]Section{}
	for _, s := range secs {
		names[s.Name] = s
		if s.Tokens <= 0 || s.Text == "" {
			t.Errorf("section %s is empty", s.Name)
		}
	}
	for _, want := range []string{"identification", "status", "conditions", "design", "eligibility", "arms_interventions"} {
		if _, ok := names[want]; !ok {
			t.Errorf("no section %s in %v", want, secs)
		}
	}
	m, _ := record.Decode(rec.Data)
	v, _ := record.Lookup(m, "protocolSection.eligibilityModule.eligibilityCriteria")
	crit, _ := v.(string)
	firstLine := strings.TrimSpace(strings.SplitN(crit, "\n", 2)[0])
	if !strings.Contains(names["eligibility"].Text, firstLine) {
		t.Errorf("eligibility section lacks the criteria's first line %q:\n%s", firstLine, names["eligibility"].Text)
	}
}

func TestSectionsOfAFlatRecord(t *testing.T) {
	secs, err := Sections([]byte(`{"nct_id":"X1","title":"A trial","eligibility":"` + strings.Repeat("Adults over 18 with asthma. ", 20) + `","arms":[{"name":"A"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "eligibility,arms,fields" {
		t.Fatalf("sections = %v", names)
	}
	if _, err := Sections([]byte(`[1,2]`)); err == nil {
		t.Fatal("a list was cut into sections")
	}
}

// A loop against a server that reads like a model: it reads sections, then submits; the accepted
// submit's arguments are the answer, and the tokens summed over turns are the server's.
func TestLoopReadsThenSubmits(t *testing.T) {
	h := newHarness(t, fakeai.Config{}, Config{})
	recs := sample(t, 12)
	var in, outTok int64
	for _, rec := range recs {
		out, steps, err := h.run(t, rec)
		if err != nil {
			t.Fatalf("%s: %v", rec.ID, err)
		}
		if out.ToolCalls[ToolReadSection] < 1 || out.ToolCalls[ToolSubmit] != 1 {
			t.Errorf("%s: tool calls %v", rec.ID, out.ToolCalls)
		}
		if out.Turns < 2 || out.Turns > 3 || len(steps) != out.Turns || !steps[len(steps)-1].Accepted {
			t.Errorf("%s: %d turns, steps %+v", rec.ID, out.Turns, steps)
		}
		var params map[string]any
		raw, _ := json.Marshal(taxonomy.MustSchema().StrictJSON())
		if err := json.Unmarshal(raw, &params); err != nil {
			t.Fatal(err)
		}
		want := fakeai.DefaultAnswer(rec.ID, params)
		if len(want) != len(taxonomy.MustSchema().Columns()) {
			t.Fatalf("the fake's answer %v does not cover the schema", want)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out.Content), &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if got[k] != v || out.Values[k] != v {
				t.Errorf("%s: %s = %v / %v, the server submitted %v", rec.ID, k, got[k], out.Values[k], v)
			}
		}
		in += out.Usage.InputTokens
		outTok += out.Usage.OutputTokens
	}
	st := h.server.Stats()
	if in != st.PromptTokens || outTok != st.CompletionTokens {
		t.Errorf("tokens %d/%d, the server counted %d/%d", in, outTok, st.PromptTokens, st.CompletionTokens)
	}
	if st.Answers[fakeai.Kind400] != 0 {
		t.Errorf("the server refused %d requests as malformed", st.Answers[fakeai.Kind400])
	}
}

// Broken calls, unknown tools, text answers and schema-breaking submits are each answered with
// what was wrong, and the loop goes on; a model that never submits stops at the turn limit. No
// record makes more requests than the limit.
func TestLoopSurvivesAHostileModel(t *testing.T) {
	h := newHarness(t, fakeai.Config{Seed: 3, Agent: fakeai.AgentConfig{
		RateBrokenArgs: 0.1, RateUnknownTool: 0.1, RateText: 0.1, RateSchemaBreak: 0.2, RateNeverSubmit: 0.1,
	}}, Config{MaxTurns: 6})
	recs := sample(t, 60)
	limits := 0
	for _, rec := range recs {
		out, _, err := h.run(t, rec)
		switch {
		case err == nil:
			if out.Values == nil {
				t.Errorf("%s: no values", rec.ID)
			}
		case errorsAsLimit(err):
			limits++
		default:
			t.Errorf("%s: %v", rec.ID, err)
		}
		if n := h.server.Stats().PerID[rec.ID]; n > 6 {
			t.Errorf("%s: %d requests, over the limit of 6", rec.ID, n)
		}
	}
	st := h.server.Stats()
	if st.Answers[fakeai.Kind400] != 0 {
		t.Errorf("%d requests malformed", st.Answers[fakeai.Kind400])
	}
	for _, k := range []string{fakeai.KindToolBrokenArgs, fakeai.KindToolUnknown, fakeai.KindToolText, fakeai.KindToolSchemaBreak} {
		if st.Answers[k] == 0 {
			t.Errorf("the server never answered %s: the test proves nothing about it", k)
		}
	}
	if limits == 0 || limits > 20 {
		t.Errorf("%d of %d records hit a limit", limits, len(recs))
	}
}

func errorsAsLimit(err error) bool {
	var le *LimitError
	return errorAs(err, &le)
}

func TestToolsAnswerWhatWasWrong(t *testing.T) {
	sch := taxonomy.MustSchema()
	a, err := New(Config{Schema: sch})
	if err != nil {
		t.Fatal(err)
	}
	rec := sample(t, 1)[0]
	r, err := a.Prepare(rec, "sys", "Record ID: "+rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		call    llm.ToolCall
		refused bool
		has     string
	}{
		{llm.ToolCall{Name: ToolReadSection, Arguments: `{"name":"nope","offset":null,"limit":null}`}, true, "The sections are: identification"},
		{llm.ToolCall{Name: ToolReadSection, Arguments: `{"name":"eligibility","offset":null,"limit":5}`}, false, "Section eligibility, tokens 0 to "},
		{llm.ToolCall{Name: ToolReadSection, Arguments: `{"name":"eligibility","offset":100000,"limit":null}`}, false, "past its end"},
		{llm.ToolCall{Name: ToolReadSection, Arguments: `{"name":`}, true, "not valid JSON"},
		{llm.ToolCall{Name: "browse", Arguments: `{}`}, true, "There is no tool named \"browse\""},
		{llm.ToolCall{Name: ToolLookup, Arguments: `{"field":"therapeutic_area"}`}, false, "- oncology: cancer of any organ"},
		{llm.ToolCall{Name: ToolLookup, Arguments: `{"field":"colour"}`}, true, "The fields are: therapeutic_area"},
		{llm.ToolCall{Name: ToolSearch, Arguments: `{"query":"INCLUSION CRITERIA"}`}, false, "[eligibility]"},
		{llm.ToolCall{Name: ToolSearch, Arguments: `{"query":"zzqqxx"}`}, false, "No line"},
		{llm.ToolCall{Name: ToolSubmit, Arguments: `{"therapeutic_area":"astrology"}`}, true, "was refused"},
		{llm.ToolCall{Name: ToolListSections, Arguments: ``}, false, "- eligibility ("},
	} {
		text, refused, _, err := a.call(ctx, r, c.call)
		if err != nil || refused != c.refused || !strings.Contains(text, c.has) {
			t.Errorf("%s %s: refused %v err %v, text:\n%s\nwant %q", c.call.Name, c.call.Arguments, refused, err, llm.Clip(text, 400), c.has)
		}
	}
}

// Reading a section page by page with the offsets the pages give covers it whole, in order, and
// never skips a byte.
func TestPagesCoverASection(t *testing.T) {
	a, err := New(Config{Schema: taxonomy.MustSchema()})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range sample(t, 30) {
		r, err := a.Prepare(rec, "sys", "overview")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.sections {
			covered, offset := 0, 0
			for page := 0; ; page++ {
				if page > 10000 {
					t.Fatalf("%s/%s: no end", rec.ID, s.Name)
				}
				limit := 37
				text := r.read(s, readArgs{Name: s.Name, Offset: &offset, Limit: &limit})
				head, body, _ := strings.Cut(text, ":\n")
				lo := runeStart(s.Text, offset*4)
				if lo > covered || !strings.HasPrefix(s.Text[lo:], body) {
					t.Fatalf("%s/%s: the page at offset %d (byte %d) leaves a gap after byte %d or is not the text there", rec.ID, s.Name, offset, lo, covered)
				}
				covered = max(covered, lo+len(body))
				i := strings.Index(head, "read on with offset ")
				if i < 0 {
					break
				}
				next, _ := strconv.Atoi(strings.TrimSuffix(head[i+len("read on with offset "):], ")"))
				if next <= offset {
					t.Fatalf("%s/%s: offset %d does not move on (%s)", rec.ID, s.Name, offset, head)
				}
				offset = next
			}
			if covered != len(s.Text) {
				t.Fatalf("%s/%s: pages cover %d bytes of %d", rec.ID, s.Name, covered, len(s.Text))
			}
		}
	}
}
