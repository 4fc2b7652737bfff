package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

// resolveProvider turns --provider auto into openai or offline, after checking the base URL the
// run would ask.
func resolveProvider(o *Options, d *Deps) (string, error) {
	if err := checkBaseURL(o, d); err != nil {
		return "", err
	}
	hasKey := d.Getenv("OPENAI_API_KEY") != ""
	switch o.Provider {
	case "openai":
		if !hasKey && !o.exportOnly {
			return "", usagef("--provider openai needs OPENAI_API_KEY in the environment (export OPENAI_API_KEY=...; it is never taken as a flag), or use --provider offline")
		}
		return runspec.ProviderOpenAI, nil
	case "offline":
		return runspec.ProviderOffline, nil
	default:
		if hasKey {
			return runspec.ProviderOpenAI, nil
		}
		if o.BaseURL != "" && !o.exportOnly {
			return "", usagef("--base-url %s names an API server, but OPENAI_API_KEY is not set: export it (any value for a local server that checks none; it is never taken as a flag), or drop --base-url to use the offline categorizer", publicURL(o.BaseURL))
		}
		d.Log.Info("OPENAI_API_KEY is not set: using the offline categorizer (provider offline); export OPENAI_API_KEY to use the API")
		return runspec.ProviderOffline, nil
	}
}

// checkModelParams refuses sampling settings the chosen model rejects, before any request.
func checkModelParams(o *Options, d *Deps, provider string) error {
	if provider != runspec.ProviderOpenAI {
		return nil
	}
	if o.Temperature != nil && modelinfo.IsReasoning(o.Model) {
		return usagef("--temperature: %s is a reasoning model and rejects temperature; drop --temperature (use --reasoning-effort) or choose a non-reasoning model", o.Model)
	}
	if o.ReasoningEffort != "" && !modelinfo.IsReasoning(o.Model) {
		d.Log.Warn("--reasoning-effort is sent as given, but "+o.Model+" is not a known reasoning model; the server may reject it with HTTP 400", "model", o.Model)
	}
	return nil
}

// routing reads --priority-ids, --escalate-model and --prices into the run spec.
func routing(o *Options, d *Deps, spec *runspec.Spec) error {
	if spec.Provider == runspec.ProviderOffline && (o.PriorityModel != "" || o.EscalateModel != "") {
		return usagef("--priority-model and --escalate-model choose API models; the offline categorizer has none (set OPENAI_API_KEY or --provider openai)")
	}
	spec.PriorityModel, spec.EscalateModel = o.PriorityModel, o.EscalateModel
	if o.PriorityIDsFile != "" {
		ids, err := readIDList(o.PriorityIDsFile)
		if err != nil {
			return err
		}
		spec.PriorityIDs = ids
	}
	if o.PricesFile != "" {
		rates, err := modelinfo.ReadRates(o.PricesFile)
		if err != nil {
			return err
		}
		spec.Prices = rates
	}
	table := modelinfo.Prices().With(spec.Prices)
	for _, m := range append([]string{spec.Model, spec.PriorityModel, spec.EscalateModel}, spec.Cascade...) {
		if m == "" {
			continue
		}
		if _, ok := table.Lookup(m); !ok {
			d.Log.Warn("the price of this model is unknown, so its cost is reported as unknown, not zero; add it with --prices FILE", "model", m, "prices_as_of", table.AsOf)
		}
	}
	return nil
}

// readIDList reads one ID per line; blank lines and lines starting with # are skipped.
func readIDList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("read --priority-ids: %w", err)
	}
	var ids []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		id := strings.TrimSpace(line)
		if id == "" || strings.HasPrefix(id, "#") || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, usagef("--priority-ids %s lists no IDs (one ID a line)", path)
	}
	return ids, nil
}

// instructions are what the model is told: the answer's schema and the prompt template, each
// with its text and where it came from.
type instructions struct {
	schema       *schema.Schema
	schemaRaw    []byte
	schemaSource string
	tmpl         *prompt.Template
	promptText   string
	promptSource string
	// agentTmpl is the agent's template (--agent), agentText and agentSource its text and name.
	agentTmpl   *prompt.Template
	agentText   string
	agentSource string
}

// loadInstructions reads --schema and --prompt, or the embedded defaults.
func loadInstructions(o *Options, provider string) (instructions, error) {
	ins := instructions{schemaRaw: taxonomy.Schema(), schemaSource: "embedded default (clinical trial categorization)"}
	if o.SchemaFile != "" {
		if provider == runspec.ProviderOffline {
			return ins, usagef("--schema %s: the offline categorizer only fills the embedded default schema; drop --schema, or set OPENAI_API_KEY (or --base-url of a local OpenAI-compatible server) and use --provider openai", o.SchemaFile)
		}
		raw, err := os.ReadFile(o.SchemaFile)
		if err != nil {
			return ins, usagef("read --schema: %w", err)
		}
		ins.schemaRaw, ins.schemaSource = raw, o.SchemaFile
	}
	sch, err := schema.Parse(ins.schemaRaw, ins.schemaSource)
	if err != nil {
		return ins, err
	}
	ins.schema = sch
	ins.promptText, ins.promptSource = taxonomy.Prompt(), "embedded default (clinical trial categorization)"
	if o.PromptFile != "" {
		b, err := os.ReadFile(o.PromptFile)
		if err != nil {
			return ins, usagef("read --prompt: %w", err)
		}
		ins.promptText, ins.promptSource = string(b), o.PromptFile
	}
	if ins.tmpl, err = prompt.Parse(ins.promptSource, ins.promptText); err != nil {
		return ins, err
	}
	if o.Agent {
		// The agent's template gives the overview; a --prompt serves as both (its user block is
		// the overview, and the one-shot fallback asks it whole).
		ins.agentText, ins.agentSource = taxonomy.AgentPrompt(), "embedded default agent (clinical trial categorization)"
		if o.PromptFile != "" {
			ins.agentText, ins.agentSource = ins.promptText, ins.promptSource
		}
		if ins.agentTmpl, err = prompt.Parse(ins.agentSource, ins.agentText); err != nil {
			return ins, err
		}
	}
	return ins, nil
}

// agentSpec is run.json's agent settings for o, or nil without --agent. Each --mcp command is
// split into its argv and its program found now: a worker (here, or a Slurm task) starts it by
// the path found here.
func agentSpec(o *Options, d *Deps, ins instructions, provider string) (*runspec.Agent, error) {
	if !o.Agent {
		return nil, nil
	}
	if provider != runspec.ProviderOpenAI {
		return nil, usagef("--agent needs a model that calls tools: set OPENAI_API_KEY (or --base-url of a local OpenAI-compatible server); the offline categorizer answers without a model")
	}
	a := &runspec.Agent{PromptSource: ins.agentSource, Prompt: ins.agentText, MaxTurns: o.AgentMaxTurns,
		MaxTokens: o.AgentMaxTokens, Fallback: o.AgentFallback, Transcripts: o.Transcripts != "off"}
	for _, line := range o.MCP {
		argv, err := proc.SplitCommand(line)
		if err != nil {
			return nil, usagef("--mcp %w", err)
		}
		path, err := d.LookPath(argv[0])
		if err != nil {
			return nil, usagef("--mcp %q: cannot find the program %s (%v); give its path, or put it on PATH", line, argv[0], err)
		}
		if argv[0], err = filepath.Abs(path); err != nil {
			return nil, usagef("--mcp %q: %w", line, err)
		}
		a.MCP = append(a.MCP, argv)
	}
	return a, nil
}

// findWorker locates the worker binary: --worker-bin, beside the coordinator, then on PATH.
func findWorker(o *Options, d *Deps) (string, error) {
	if o.WorkerBin != "" {
		p, err := filepath.Abs(o.WorkerBin)
		if err != nil {
			return "", usagef("--worker-bin %s: %w", o.WorkerBin, err)
		}
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", usagef("--worker-bin %s is not an executable file", o.WorkerBin)
		}
		return p, nil
	}
	if exe, err := d.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "worker")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := d.LookPath("worker"); err == nil {
		return filepath.Abs(p)
	}
	return "", usagef("cannot find the worker binary: not beside the coordinator and not on PATH; build it (make build) or pass --worker-bin PATH")
}

// idColumn names the ID column of the CSV outputs.
func idColumn(idField string) string {
	if idField == "" {
		return "nct_id"
	}
	parts := strings.Split(idField, ".")
	return parts[len(parts)-1]
}

// checkRecords renders the prompt for every record, so a template that references a missing
// checkOut makes sure the output folder can be written, without writing anything that stays.
func checkOut(out string) error {
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		parent := filepath.Dir(filepath.Clean(out))
		pst, perr := os.Stat(parent)
		if perr != nil || !pst.IsDir() {
			return usagef("--out %s: its parent folder %s does not exist; create it first", out, parent)
		}
		return probeWritable(parent, "--out "+out+": cannot create it in "+parent)
	case err != nil:
		return usagef("--out %s: %w", out, err)
	case !st.IsDir():
		return usagef("--out %s exists and is not a folder; choose another --out", out)
	}
	return probeWritable(out, "--out "+out+" is not writable")
}

func probeWritable(dir, msg string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return usagef("%s (%w); fix its permissions or choose another --out", msg, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// archive moves the named files of the run folder into a previous-<time>/ folder and returns it.
func archive(dir rundir.Dir, names []string, now time.Time) (string, error) {
	prev := dir.Previous(now)
	if err := os.MkdirAll(prev, 0o755); err != nil {
		return "", fmt.Errorf("archive old run: %w", err)
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(dir.Path(), n), filepath.Join(prev, n)); err != nil {
			return "", fmt.Errorf("archive old run: %w", err)
		}
	}
	return prev, nil
}

func publicURL(raw string) string {
	u, _ := runspec.PublicURL(raw)
	return u
}

// checkBaseURL checks the base URL the run would ask: --base-url, else OPENAI_BASE_URL.
func checkBaseURL(o *Options, d *Deps) error {
	if o.BaseURL != "" {
		return runspec.CheckBaseURL(o.BaseURL, "--base-url")
	}
	return runspec.CheckBaseURL(d.Getenv("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
}

// cacheDir resolves --cache (see cache.Resolve); a value the workers could not use is a usage
// error.
func cacheDir(v string) (string, error) {
	d, err := cache.Resolve(v)
	if err != nil {
		return "", usagef("%w", err)
	}
	return d, nil
}
