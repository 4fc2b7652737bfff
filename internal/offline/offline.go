package offline

import (
	"encoding/json"
	"fmt"

	"github.com/trialcat/trialcat/internal/record"
)

// maxRationale bounds the rationale, well under the schema's maxLength.
const maxRationale = 300

// Eligibility thresholds (see the README's offline rules).
const (
	lowWords         = 150 // fewer words: low
	highWords        = 500 // at least this many words: high
	mediumCriteria   = 12  // at least this many criteria: at least medium
	highCriteria     = 30  // at least this many criteria: high
	childMaxYears    = 18  // a child is younger than this
	olderAdultFromYr = 65  // an older adult is at least this old
)

// Categorize fills the default schema (taxonomy.MustSchema) for one record, from its own
// structured fields. The values are strings valid against that schema.
func Categorize(data json.RawMessage) (map[string]any, error) {
	m, err := record.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	f := extract(m)
	biologicsByName(&f)
	area := decideArea(f)
	itype, iwhy := decideIntervention(f)
	purpose, pwhy := decidePurpose(f)
	pop, popWhy := decidePopulation(f)
	cx, cxWhy := decideComplexity(f.criteria)
	return map[string]any{
		"therapeutic_area":       area.area,
		"intervention_type":      itype,
		"trial_purpose":          purpose,
		"population":             pop,
		"eligibility_complexity": cx,
		"rationale":              rationale(area, iwhy, pwhy, popWhy, cxWhy),
	}, nil
}
