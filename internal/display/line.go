package display

import (
	"fmt"
	"time"

	"github.com/trialcat/trialcat/internal/tally"
)

// Line is the plain progress line, one greppable line with every counter:
//
//	progress 240/400 (60.0%) 118 rec/min eta 1m21s cost $0.0123 tokens 51234/8123 retries 3 (429s 1) failed 2 restarts 0 workers 20
//
// The ETA reads "unknown" until a record is done; a cost reads "$0.0123+unknown" when some
// model's price is unknown; tokens are input/output. An agent run adds
// "agent turns 712 (3.0/record) fallbacks 4"; a run whose prompts hit the provider's cache adds
// "cached 61%" (of the input tokens), and a flex run refused by the tier "flex refused 12 (fell
// back 3)".
func Line(s tally.Snapshot) string {
	line := fmt.Sprintf("progress %d/%d (%.1f%%) %s rec/min eta %s cost %s tokens %d/%d retries %d (429s %d) failed %d restarts %d workers %d",
		s.Done, s.Total, percent(s.Done, s.Total), fmtRate(s.Rate), etaString(s), costString(s, "+unknown"),
		s.InputTokens, s.OutputTokens, s.Retries, s.RateLimited, s.Failed, s.Restarts, s.Running)
	if a := agentString(s); a != "" {
		line += " " + a
	}
	if c := cachedString(s); c != "" {
		line += " " + c
	}
	if s.FlexRefusals > 0 {
		line += fmt.Sprintf(" flex refused %d (fell back %d)", s.FlexRefusals, s.FlexFellBack)
	}
	return line
}

// cachedString is the share of prompt tokens the provider's prompt cache served ("" before any).
func cachedString(s tally.Snapshot) string {
	if s.CachedTokens == 0 || s.InputTokens == 0 {
		return ""
	}
	return fmt.Sprintf("cached %.0f%%", 100*float64(s.CachedTokens)/float64(s.InputTokens))
}

// agentString is the agent's counters, or "" when no record went through its loop.
func agentString(s tally.Snapshot) string {
	if s.AgentRecords == 0 {
		return ""
	}
	return fmt.Sprintf("agent turns %d (%.1f/record) fallbacks %d", s.AgentTurns, float64(s.AgentTurns)/float64(s.AgentRecords), s.AgentFallbacks)
}

func etaString(s tally.Snapshot) string {
	if !s.ETAKnown {
		return "unknown"
	}
	return fmtDuration(s.ETA)
}

func costString(s tally.Snapshot, unknown string) string {
	c := fmt.Sprintf("$%.4f", s.CostUSD)
	if s.CostUnknown {
		c += unknown
	}
	return c
}

func percent(a, b int64) float64 {
	if b <= 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

func fmtRate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

// fmtDuration is a short duration for people: 45s, 1m21s, 2h5m.
func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// fmtCount shortens big counts for the bars: 9999, 51.2k, 3.40M.
func fmtCount(n int64) string {
	switch {
	case n < 10_000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprintf("%.2fM", float64(n)/1e6)
}
