package tokens

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tiktoken-go/tokenizer"

	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		model, text string
		want        int
	}{
		// Reference counts from OpenAI's tiktoken.
		{"gpt-4o", "hello world", 2},
		{"gpt-4", "hello world", 2},
		{"gpt-4", "tiktoken is great!", 6},
		{"gpt-5-mini", "", 0},
	} {
		if got := ForModel(tc.model).Count(tc.text); got != tc.want {
			t.Errorf("ForModel(%q).Count(%q) = %d, want %d", tc.model, tc.text, got, tc.want)
		}
	}
}

func TestEncodingsDiffer(t *testing.T) {
	// Text where the two encodings disagree proves ForModel really switches tables.
	text := "Die Studie untersucht die Wirksamkeit von Pembrolizumab bei Patientinnen."
	o, c := ForModel("gpt-5").Count(text), ForModel("gpt-3.5-turbo").Count(text)
	if o == c {
		t.Fatalf("o200k and cl100k both count %d tokens; want different counts", o)
	}
	if got := Count(text); got != o {
		t.Errorf("Count = %d, want the o200k count %d", got, o)
	}
}

func TestEncoding(t *testing.T) {
	for _, tc := range []struct{ model, want string }{
		{"gpt-5-mini", O200kBase},
		{"openai/gpt-5-nano", O200kBase},
		{"GPT-4o-2024-08-06", O200kBase},
		{"gpt-4.1-mini", O200kBase},
		{"o3", O200kBase},
		{"o4-mini", O200kBase},
		{"gpt-4", Cl100kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"Qwen/Qwen2.5-7B-Instruct", Cl100kBase},
	} {
		if got := Encoding(tc.model); got != tc.want {
			t.Errorf("Encoding(%q) = %s, want %s", tc.model, got, tc.want)
		}
		if got := ForModel(tc.model).Name(); got != tc.want {
			t.Errorf("ForModel(%q).Name() = %s, want %s", tc.model, got, tc.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	sys, user := "You categorize clinical trials.", "Record ID: NCT01234567\nTitle: A study of aspirin."
	for _, tc := range []struct {
		name         string
		system, user string
		maxOutput    int
		want         int
	}{
		{"both messages", sys, user, 0, Count(sys) + Count(user) + 2*PerMessage + ReplyPriming},
		{"no system message", "", user, 0, Count(user) + PerMessage + ReplyPriming},
		{"expected output added", sys, user, 500, Count(sys) + Count(user) + 2*PerMessage + ReplyPriming + 500},
		{"negative output ignored", sys, user, -5, Count(sys) + Count(user) + 2*PerMessage + ReplyPriming},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Estimate(tc.system, tc.user, tc.maxOutput); got != tc.want {
				t.Errorf("Estimate = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCounterEstimateSystemChanges(t *testing.T) {
	// The remembered system count must follow the system message, not stick to the first one.
	c := ForModel("gpt-5-mini")
	user := "Record ID: NCT1"
	for _, sys := range []string{"short", "a much longer system message with many more words in it", "short", ""} {
		if got, want := c.Estimate(sys, user, 0), Estimate(sys, user, 0); got != want {
			t.Errorf("Counter.Estimate(%q) = %d, want %d", sys, got, want)
		}
	}
}

func TestCountConcurrent(t *testing.T) {
	text := strings.Repeat("Eligibility: adults aged 18 to 65 with type 2 diabetes. ", 50)
	want := Count(text)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got := Count(text); got != want {
					t.Errorf("concurrent Count = %d, want %d", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// realPrompt renders the embedded prompt for the first record of the bundled sample.
func realPrompt(tb testing.TB) prompt.Messages {
	tb.Helper()
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	if !sc.Scan() {
		tb.Fatalf("no record: %v", sc.Err())
	}
	data := append([]byte(nil), sc.Bytes()...)
	m, err := record.Decode(data)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl, err := prompt.Parse("default", taxonomy.Prompt())
	if err != nil {
		tb.Fatal(err)
	}
	msgs, err := tmpl.Render(record.Record{ID: record.IDOf(m, ""), Data: data})
	if err != nil {
		tb.Fatal(err)
	}
	return msgs
}

func TestRealPrompt(t *testing.T) {
	msgs := realPrompt(t)
	n := Estimate(msgs.System, msgs.User, 0)
	chars := len(msgs.System) + len(msgs.User)
	// English prose and JSON run at 3 to 5 characters per token.
	if n < chars/6 || n > chars/2 {
		t.Errorf("Estimate = %d tokens for %d characters; want between %d and %d", n, chars, chars/6, chars/2)
	}
}

// BenchmarkCount counts a real record's rendered prompt; compare with a request's latency (a
// second or more) to see that budgeting by tokens costs next to nothing. The Counter case is what
// a worker pays per record: its system message is counted once.
func BenchmarkCount(b *testing.B) {
	msgs := realPrompt(b)
	Count("warm up") // build the encoder outside the timing
	b.Run("Estimate", func(b *testing.B) {
		b.SetBytes(int64(len(msgs.System) + len(msgs.User)))
		b.ReportAllocs()
		for b.Loop() {
			Estimate(msgs.System, msgs.User, 0)
		}
	})
	b.Run("Counter", func(b *testing.B) {
		c := ForModel("gpt-5-mini")
		b.SetBytes(int64(len(msgs.System) + len(msgs.User)))
		b.ReportAllocs()
		for b.Loop() {
			c.Estimate(msgs.System, msgs.User, 0)
		}
	})
}

// modelinfo names the encodings without importing the tokenizer: its names must be the library's.
func TestEncodingNamesAreTheTokenizers(t *testing.T) {
	if O200kBase != string(tokenizer.O200kBase) || Cl100kBase != string(tokenizer.Cl100kBase) {
		t.Fatalf("encodings %q and %q; the tokenizer calls them %q and %q", O200kBase, Cl100kBase, tokenizer.O200kBase, tokenizer.Cl100kBase)
	}
}
