package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trialcat/trialcat/internal/textfmt"
)

// usd formats a cost: more decimals for small amounts.
func usd(v float64) string {
	switch {
	case v == 0:
		return "$0.00"
	case math.Abs(v) < 0.000001:
		return "under $0.000001"
	case math.Abs(v) < 0.01:
		return "$" + strings.TrimRight(fmt.Sprintf("%.6f", v), "0")
	case math.Abs(v) < 1:
		return fmt.Sprintf("$%.4f", v)
	case math.Abs(v) < 1000:
		return fmt.Sprintf("$%.2f", v)
	}
	return "$" + textfmt.Thousands(int64(math.Round(v)))
}

// seconds formats a duration given in seconds: "0.48 s", "12.3 s", "3 m 12 s", "2 h 05 m".
func seconds(s float64) string {
	switch {
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	case s < 60:
		return fmt.Sprintf("%.1f s", s)
	case s < 3600:
		return fmt.Sprintf("%d m %02d s", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%d h %02d m", int(s)/3600, int(s)%3600/60)
}

// millis formats milliseconds compactly for axis labels: "850ms", "1.5s", "2m".
func millis(ms float64) string {
	switch {
	case ms < 1000:
		return trimFloat(ms) + "ms"
	case ms < 60_000:
		return trimFloat(ms/1000) + "s"
	case ms < 3_600_000:
		return trimFloat(ms/60_000) + "m"
	}
	return trimFloat(ms/3_600_000) + "h"
}

// count formats a number compactly for axis labels: "850", "1.5k", "2M".
func count(v float64) string {
	switch {
	case v < 1000:
		return trimFloat(v)
	case v < 1e6:
		return trimFloat(v/1e3) + "k"
	case v < 1e9:
		return trimFloat(v/1e6) + "M"
	}
	return trimFloat(v/1e9) + "G"
}

// trimFloat formats v with at most one decimal, dropping a trailing ".0".
func trimFloat(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// percent formats part/whole as a percentage.
func percent(part, whole int64) string {
	if whole == 0 {
		return "0%"
	}
	p := 100 * float64(part) / float64(whole)
	if p > 0 && p < 1 {
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", p)
}

// stamp formats a time in UTC to the second, or "" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// clip shortens s to at most n runes, ending with "…" when cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// num formats an SVG coordinate.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// plural returns "1 line" or "2 lines".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return textfmt.Thousands(n) + " " + word + "s"
}
