package runspec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
)

// Version is the run.json format version.
const Version = 1

// Providers.
const (
	ProviderOpenAI  = "openai"
	ProviderOffline = "offline"
)

// Input describes the input file the batches were cut from.
type Input struct {
	Path    string `json:"path"`
	Format  string `json:"format"`
	SHA256  string `json:"sha256"`
	Records int64  `json:"records"`
	Dropped int    `json:"dropped_duplicates,omitempty"`
}

// Spec is the content of run.json.
type Spec struct {
	Version             int             `json:"version"`
	CreatedAt           time.Time       `json:"created_at"`
	Provider            string          `json:"provider"`
	Model               string          `json:"model"`
	BaseURL             string          `json:"base_url,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	MaxCompletionTokens int64           `json:"max_completion_tokens,omitempty"`
	PromptSource        string          `json:"prompt_source"`
	Prompt              string          `json:"prompt"`
	SchemaSource        string          `json:"schema_source"`
	Schema              json.RawMessage `json:"schema"`
	IDField             string          `json:"id_field,omitempty"`
	IDColumn            string          `json:"id_column"`
	Dedupe              bool            `json:"dedupe,omitempty"`
	MaxAttempts         int             `json:"max_attempts"`
	Timeout             Duration        `json:"timeout"`
	Concurrency         int             `json:"concurrency"`
	// Hedge is --hedge: at most this percent of the records get a second copy of a request
	// that runs past the run's p90 latency once nothing is left to hand out (0: off).
	Hedge          float64                   `json:"hedge,omitempty"`
	RPM            int                       `json:"rpm,omitempty"`
	TPM            int                       `json:"tpm,omitempty"`
	MaxInputTokens int                       `json:"max_input_tokens,omitempty"`
	PriorityModel  string                    `json:"priority_model,omitempty"`
	PriorityIDs    []string                  `json:"priority_ids,omitempty"`
	EscalateModel  string                    `json:"escalate_model,omitempty"`
	Prices         map[string]modelinfo.Rate `json:"prices,omitempty"`
	Workers        int                       `json:"workers"`
	BatchMode      string                    `json:"batch_mode"`
	Input          Input                     `json:"input"`
	Batches        []batch.Range             `json:"batches"`
	// Backend is how the workers ask: "" or BackendLive, request by request; BackendBatchAPI,
	// through the OpenAI Batch API at batch prices. It may change between passes (a live pass
	// finishes what the Batch API left), so it is not part of the fingerprint.
	Backend string `json:"backend,omitempty"`
	// Cache is the response cache's folder (--cache); "" means none. Not in the fingerprint:
	// a rerun may add, move or drop it.
	Cache string `json:"cache,omitempty"`
	// BatchAPI tunes the Batch API backend; zero values mean the defaults.
	BatchAPI BatchAPI `json:"batch_api,omitzero"`
	// Votes is --votes: each record asked this many times, each field's majority kept with
	// its share of the votes as its confidence (0 or 1: one answer).
	Votes int `json:"votes,omitempty"`
	// Cascade are the models after Model (--cascade): a record goes to the next only while its
	// answer is doubtful; Confidence is --confidence, the least share of votes a field may have.
	Cascade    []string `json:"cascade,omitempty"`
	Confidence float64  `json:"confidence,omitempty"`
	// SinceRun is --since-run, the earlier run whose answers carried.jsonl holds; "" means none.
	// Not in the fingerprint: a rerun may add or drop it.
	SinceRun string `json:"since_run,omitempty"`
	// ServiceTier (--service-tier), FlexFallback (--flex-fallback), PromptCacheKey
	// (--prompt-cache-key, derived when not given) and CacheRetention (--cache-retention) steer
	// price and speed, never answers: not in the fingerprint, a rerun may change them.
	ServiceTier    string `json:"service_tier,omitempty"`
	FlexFallback   int    `json:"flex_fallback,omitempty"`
	PromptCacheKey string `json:"prompt_cache_key,omitempty"`
	CacheRetention string `json:"cache_retention,omitempty"`
	// Agent, when set (--agent), works each record through the tool loop; Prompt above is then
	// the one-shot prompt of the fallback.
	Agent *Agent `json:"agent,omitempty"`
}

// Agent is --agent's settings.
type Agent struct {
	// Prompt is the agent's template: its system block states the task, its user block is the
	// record's overview.
	PromptSource string `json:"prompt_source"`
	Prompt       string `json:"prompt"`
	// MaxTurns and MaxTokens bound one record's loop (MaxTokens 0: no bound).
	MaxTurns  int   `json:"max_turns"`
	MaxTokens int64 `json:"max_tokens,omitempty"`
	// Fallback is what a record that reaches a limit gets: AgentFallbackOneShot or
	// AgentFallbackFail.
	Fallback string `json:"fallback"`
	// MCP lists the argv of each MCP server every worker starts (--mcp).
	MCP [][]string `json:"mcp,omitempty"`
	// Transcripts writes OUT/transcripts/worker_N.jsonl.
	Transcripts bool `json:"transcripts"`
}

// Agent fallbacks.
const (
	AgentFallbackOneShot = "one-shot"
	AgentFallbackFail    = "fail"
)

// agentPrint is the part of Agent that decides answers, for the fingerprint.
func (a *Agent) print() string {
	if a == nil {
		return "off"
	}
	servers := make([]string, len(a.MCP))
	for i, argv := range a.MCP {
		servers[i] = strings.Join(argv, " ")
	}
	return fmt.Sprintf("on, template %s, mcp [%s]", hash(a.Prompt), strings.Join(servers, "; "))
}

// Backends.
const (
	BackendLive     = "live"
	BackendBatchAPI = "batch-api"
)

// BatchAPI are the Batch API backend's settings.
type BatchAPI struct {
	// Poll is the first interval of the batch status polls (they back off to 12 times it);
	// 0 means 5s.
	Poll Duration `json:"poll,omitzero"`
	// MaxRequests and MaxBytes split a worker's requests into input files below the API's
	// limits; 0 means the API's (50,000 requests, 200 MB).
	MaxRequests int   `json:"max_requests,omitzero"`
	MaxBytes    int64 `json:"max_bytes,omitzero"`
}

// IsBatchAPI reports whether the workers go through the Batch API.
func (s *Spec) IsBatchAPI() bool { return s.Backend == BackendBatchAPI }

// Duration is a time.Duration spelled like "2m0s" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ErrNoRun means the folder holds no run.json.
var ErrNoRun = errors.New("no run.json")

// Load reads run.json from path.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoRun)
	}
	if err != nil {
		return nil, fmt.Errorf("read run file: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("run file %s is damaged (%v); start over with --fresh: %w", path, err, exitcode.ErrUsage)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("run file %s has version %d, this program writes %d; start over with --fresh: %w", path, s.Version, Version, exitcode.ErrUsage)
	}
	return &s, nil
}

// Save writes run.json atomically.
func Save(path string, s *Spec) error {
	if err := safefile.WriteJSON(path, s); err != nil {
		return fmt.Errorf("write run file: %w", err)
	}
	return nil
}

// Fingerprint lists the settings that decide answers or batching, as name=value pairs. Two runs
// may share batch files and results only when their fingerprints are equal.
func (s *Spec) Fingerprint() map[string]string {
	temp := ""
	if s.Temperature != nil {
		temp = fmt.Sprint(*s.Temperature)
	}
	return map[string]string{
		"input (content hash)":    s.Input.SHA256,
		"--provider":              s.Provider,
		"--model":                 s.Model,
		"--base-url":              s.BaseURL,
		"--reasoning-effort":      s.ReasoningEffort,
		"--temperature":           temp,
		"--prompt (content hash)": hash(s.Prompt),
		"--schema (content hash)": hash(compact(s.Schema)),
		"--id-field":              s.IDField,
		"--dedupe":                fmt.Sprint(s.Dedupe),
		"--workers/--batches":     fmt.Sprintf("%d/%s", s.Workers, s.BatchMode),
		"--max-input-tokens":      fmt.Sprint(s.MaxInputTokens),
		"--priority-model":        s.PriorityModel,
		"--priority-ids (hash)":   hash(strings.Join(s.PriorityIDs, "\n")),
		"--escalate-model":        s.EscalateModel,
		"--agent":                 s.Agent.print(),
		"--votes":                 fmt.Sprint(max(s.Votes, 1)),
		"--cascade":               strings.Join(s.Cascade, ","),
		"--confidence":            fmt.Sprint(s.Confidence),
	}
}

// Mismatch describes how a new run's settings differ from an existing run's, one line per
// setting, or returns "" when they match.
func Mismatch(old, cur *Spec) string {
	a, b := old.Fingerprint(), cur.Fingerprint()
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if a[k] != b[k] {
			lines = append(lines, fmt.Sprintf("  %s: was %q, now %q", k, short(a[k]), short(b[k])))
		}
	}
	return strings.Join(lines, "\n")
}

// compact spells JSON without insignificant space, so re-indenting run.json keeps its hash.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// PublicURL is raw without its user:password part, the form of a base URL that may be stored
// and shown; hadSecret reports whether there was one. A URL that does not parse is returned as
// is.
func PublicURL(raw string) (public string, hadSecret bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw, false
	}
	u.User = nil
	return u.String(), true
}

// FullBaseURL is the base URL a worker should call: the one in the environment (OPENAI_BASE_URL,
// where the coordinator puts a URL with credentials, never in run.json) when it is the run's URL
// with credentials added, else the run's.
func (s *Spec) FullBaseURL(getenv func(string) string) string {
	if env := getenv("OPENAI_BASE_URL"); env != "" {
		if pub, secret := PublicURL(env); secret && pub == s.BaseURL {
			return env
		}
	}
	return s.BaseURL
}

// Layout is the column layout of this run's results files for its parsed schema.
//
// With --votes, each category field's confidence column follows the schema's columns (free-text
// fields take the first vote's value and have none).
func (s *Spec) Layout(sch *schema.Schema) results.Layout {
	cols := sch.Columns()
	if s.Votes > 1 {
		for _, f := range sch.Categories() {
			cols = append(cols, results.ConfidenceColumn(f))
		}
	}
	return results.Layout{IDColumn: s.IDColumn, Columns: cols}
}

// LoadRun reads the run.json at path and parses its schema: the run a command that works on an
// existing run folder (status, merge, compare, sample, the engines) starts from. A folder with
// no run.json is a usage error that says so.
func LoadRun(path string) (*Spec, *schema.Schema, error) {
	spec, err := Load(path)
	if errors.Is(err, ErrNoRun) {
		return nil, nil, fmt.Errorf("%s holds no run (no run.json); give the --out of a run: %w", filepath.Dir(path), exitcode.ErrUsage)
	}
	if err != nil {
		return nil, nil, err
	}
	sch, err := schema.Parse(spec.Schema, spec.SchemaSource)
	if err != nil {
		return nil, nil, err
	}
	return spec, sch, nil
}

// CheckBaseURL refuses a base URL that no request could reach: one with spaces around it, no
// scheme, a scheme other than http or https, or no host. source names where it came from
// (--base-url, OPENAI_BASE_URL) for the message; the URL is shown without its user:password.
func CheckBaseURL(raw, source string) error {
	if raw == "" {
		return nil
	}
	shown := raw
	if i := strings.Index(shown, "://"); i >= 0 {
		if j := strings.LastIndex(shown[i+3:], "@"); j >= 0 {
			shown = shown[:i+3] + shown[i+3+j+1:] // a user:password is never shown
		}
	}
	hint := "want http://HOST[:PORT]/v1 or https://HOST[:PORT]/v1, such as http://127.0.0.1:8000/v1"
	if strings.TrimSpace(raw) != raw {
		return fmt.Errorf("%s %q has spaces around it; %s: %w", source, shown, hint, exitcode.ErrUsage)
	}
	if !strings.Contains(raw, "://") {
		return fmt.Errorf("%s %q has no scheme; %s: %w", source, shown, hint, exitcode.ErrUsage)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q is not a URL; %s: %w", source, shown, hint, exitcode.ErrUsage)
	case u.Scheme == "":
		return fmt.Errorf("%s %q has no scheme; %s: %w", source, shown, hint, exitcode.ErrUsage)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s %q: the scheme %s is not served; %s: %w", source, shown, u.Scheme, hint, exitcode.ErrUsage)
	case u.Host == "":
		return fmt.Errorf("%s %q names no host; %s: %w", source, shown, hint, exitcode.ErrUsage)
	}
	return nil
}

// DerivedCacheKey is the prompt_cache_key of a run not given --prompt-cache-key: a hash of what
// makes its requests' static prefix (the prompt template, the schema, the agent's template), so
// runs that share the prefix share the key.
func (s *Spec) DerivedCacheKey() string {
	agent := ""
	if s.Agent != nil {
		agent = s.Agent.Prompt
	}
	return "trialcat-" + hash(s.Prompt+"\x00"+compact(s.Schema)+"\x00"+agent)
}
