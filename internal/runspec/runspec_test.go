package runspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
)

func testSpec() *Spec {
	t := 0.2
	return &Spec{
		Version: Version, Provider: ProviderOpenAI, Model: "gpt-5-mini", BaseURL: "http://h:8000/v1",
		Temperature: &t, Prompt: "Categorize {{.ID}}", Schema: []byte(`{"type": "object"}`),
		Workers: 4, BatchMode: "equal", Timeout: Duration(90 * time.Second), MaxAttempts: 5,
		Input: Input{Path: "trials.jsonl", SHA256: "abc", Records: 10},
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.json")
	want := testSpec()
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := Mismatch(want, got); diff != "" {
		t.Errorf("the saved run differs from the loaded one:\n%s", diff)
	}
	if time.Duration(got.Timeout) != 90*time.Second || got.MaxAttempts != 5 || *got.Temperature != 0.2 {
		t.Errorf("loaded %+v", got)
	}
}

func TestLoadSaysWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "run.json")); !errors.Is(err, ErrNoRun) {
		t.Errorf("a missing run.json: %v, want ErrNoRun", err)
	}
	if _, _, err := LoadRun(filepath.Join(dir, "run.json")); !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "no run.json") {
		t.Errorf("LoadRun of a folder with no run: %v", err)
	}
	damaged := filepath.Join(dir, "damaged.json")
	os.WriteFile(damaged, []byte(`{"version": 1, "model": `), 0o644)
	if _, err := Load(damaged); !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "--fresh") {
		t.Errorf("a damaged run.json: %v; want a usage error that suggests --fresh", err)
	}
	other := filepath.Join(dir, "other.json")
	os.WriteFile(other, []byte(`{"version": 999}`), 0o644)
	if _, err := Load(other); !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "version 999") {
		t.Errorf("a run.json of another version: %v", err)
	}
}

// A rerun with other settings is refused with the list of differences; the same settings resume.
func TestMismatchListsEveryChangedSettingAndNothingElse(t *testing.T) {
	old := testSpec()
	if d := Mismatch(old, testSpec()); d != "" {
		t.Fatalf("equal runs differ:\n%s", d)
	}
	cur := testSpec()
	cur.Model = "gpt-5"
	cur.Prompt = "another prompt"
	cur.Temperature = nil
	cur.Input.Path = "elsewhere/trials.jsonl" // the same content elsewhere resumes
	cur.MaxAttempts = 9                       // attempts may change between passes
	d := Mismatch(old, cur)
	for _, want := range []string{"--model", `"gpt-5-mini"`, `"gpt-5"`, "--prompt (content hash)", "--temperature"} {
		if !strings.Contains(d, want) {
			t.Errorf("the differences do not name %s:\n%s", want, d)
		}
	}
	if n := strings.Count(d, "\n") + 1; n != 3 {
		t.Errorf("%d differences listed, want 3 (model, prompt, temperature):\n%s", n, d)
	}
	cur = testSpec()
	cur.Schema = []byte("{\n  \"type\":   \"object\"\n}")
	if d := Mismatch(old, cur); d != "" {
		t.Errorf("the same schema laid out otherwise is a different run:\n%s", d)
	}
}

func TestBaseURLSecretsStayOutOfRunJSON(t *testing.T) {
	pub, secret := PublicURL("https://user:pa55@llm.example:8443/v1")
	if pub != "https://llm.example:8443/v1" || !secret {
		t.Errorf("PublicURL = %q, %v", pub, secret)
	}
	if pub, secret := PublicURL("http://localhost:8000/v1"); pub != "http://localhost:8000/v1" || secret {
		t.Errorf("a URL with no secret: %q, %v", pub, secret)
	}
	s := &Spec{BaseURL: "https://llm.example:8443/v1"}
	env := map[string]string{"OPENAI_BASE_URL": "https://user:pa55@llm.example:8443/v1"}
	if got := s.FullBaseURL(func(k string) string { return env[k] }); got != env["OPENAI_BASE_URL"] {
		t.Errorf("FullBaseURL = %q; the worker gets the whole URL from its environment", got)
	}
	env["OPENAI_BASE_URL"] = "https://user:pa55@other.example/v1"
	if got := s.FullBaseURL(func(k string) string { return env[k] }); got != s.BaseURL {
		t.Errorf("FullBaseURL = %q; a secret URL of another server must not be used", got)
	}
}

func TestCheckBaseURLRefusesWhatNoRequestCouldReach(t *testing.T) {
	for _, ok := range []string{"", "http://127.0.0.1:8000/v1", "https://api.example/v1", "https://u:p@h/v1"} {
		if err := CheckBaseURL(ok, "--base-url"); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for raw, want := range map[string]string{
		"127.0.0.1:8000/v1":       "no scheme",
		" http://h/v1":            "spaces",
		"http://h/v1\n":           "spaces",
		"ftp://h/v1":              "scheme ftp",
		"http:///v1":              "no host",
		"https://user:pw@/v1":     "no host",
		"localhost:8000":          "no scheme",
		"http://[::1:8000/v1":     "not a URL",
		"https://u:secret@h:x/v1": "not a URL",
	} {
		err := CheckBaseURL(raw, "--base-url")
		if err == nil || !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want a usage error saying %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") || err != nil && strings.Contains(err.Error(), ":pw@") {
			t.Errorf("%q: the message shows the password: %v", raw, err)
		}
	}
}
