package offline

import (
	"encoding/json"
	"fmt"
	"strings"

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

// RegistryFields are the answers of the default schema that the registry states itself, and
// the record fields each is read from (with the rules of the taxonomy README, but without
// reading intervention names: the registry's own interventions[].type decides).
var RegistryFields = []string{"intervention_type", "trial_purpose", "population"}

// FromRegistry fills RegistryFields for one record from its own structured fields:
// intervention_type from interventions[].type (and studyType), trial_purpose from
// designInfo.primaryPurpose and studyType, population from eligibilityModule.stdAges (or the
// minimum and maximum ages).
func FromRegistry(data json.RawMessage) (map[string]string, error) {
	m, err := record.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	f := extract(m)
	itype, _ := decideIntervention(f)
	purpose, _ := decidePurpose(f)
	pop, _ := decidePopulation(f)
	return map[string]string{"intervention_type": itype, "trial_purpose": purpose, "population": pop}, nil
}

// Facts are a record's fields a reviewer needs beside its answers: title, conditions,
// interventions (type: name), study type, primary purpose, standard ages.
func Facts(data json.RawMessage) map[string]string {
	m, err := record.Decode(data)
	if err != nil {
		return nil
	}
	f := extract(m)
	var conds []string
	for _, it := range f.areaTiers[tierRecord] {
		if it.source == "conditions" {
			conds = append(conds, it.text)
		}
	}
	var ivs []string
	for i, t := range f.types {
		name := ""
		if i < len(f.names) {
			name = f.names[i]
		}
		ivs = append(ivs, strings.TrimSpace(t+": "+name))
	}
	title := ""
	if len(f.targets) > 0 {
		title = f.targets[0]
	}
	return map[string]string{
		"title": title, "conditions": strings.Join(conds, "; "), "interventions": strings.Join(ivs, "; "),
		"study_type": f.studyType, "primary_purpose": f.purpose, "std_ages": strings.Join(f.stdAges, ", "),
	}
}
