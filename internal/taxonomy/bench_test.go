package taxonomy

import (
	"testing"

	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/testkit"
)

// BenchmarkRenderDefault renders the default prompt for the sample's records, the per-record
// work of the coordinator's prompt check and of every one-shot request.
func BenchmarkRenderDefault(b *testing.B) {
	tmpl, err := prompt.Parse("prompt.tmpl", Prompt())
	if err != nil {
		b.Fatal(err)
	}
	lines := testkit.SampleRecords(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := tmpl.Render(record.Record{ID: "NCT0", Data: lines[i%len(lines)]}); err != nil {
			b.Fatal(err)
		}
	}
}
