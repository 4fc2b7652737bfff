package offline

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

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
	area := decideArea(f.areaTiers, f.branches)
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

// facts are the fields of a record the rules use, from either record shape.
type facts struct {
	areaTiers  [numTiers][]item
	branches   []item
	types      []string // interventions' ClinicalTrials.gov types (DRUG, ...), one per intervention
	typesFrom  string
	studyType  string // INTERVENTIONAL, OBSERVATIONAL, EXPANDED_ACCESS or ""
	typeFrom   string
	purpose    string // primaryPurpose spelled as ClinicalTrials.gov does (TREATMENT, ...) or ""
	purposeOf  string
	stdAges    []string // CHILD, ADULT, OLDER_ADULT
	agesFrom   string
	minAge     string
	maxAge     string
	minAgeFrom string
	maxAgeFrom string
	criteria   string
}

// extract reads the facts of a ClinicalTrials.gov API v2 record, or of a flat record.
func extract(m map[string]any) facts {
	if _, ok := m["protocolSection"]; ok {
		return extractCTGov(m)
	}
	return extractFlat(m)
}

func extractCTGov(m map[string]any) facts {
	get := func(path string) any {
		v, _ := record.Lookup(m, path)
		return v
	}
	var f facts
	const ps = "protocolSection."
	for _, c := range strs(get(ps + "conditionsModule.conditions")) {
		f.areaTiers[tierRecord] = append(f.areaTiers[tierRecord], item{source: "conditions", text: c})
	}
	for _, p := range []string{"identificationModule.briefTitle", "identificationModule.officialTitle"} {
		if t := str(get(ps + p)); t != "" {
			f.areaTiers[tierRecord] = append(f.areaTiers[tierRecord], item{source: "title", text: t})
		}
	}
	const cb = "derivedSection.conditionBrowseModule."
	for _, t := range field(get(cb+"meshes"), "term") {
		f.areaTiers[tierTerms] = append(f.areaTiers[tierTerms], item{source: "MeSH term", text: t})
	}
	for _, k := range strs(get(ps + "conditionsModule.keywords")) {
		f.areaTiers[tierTerms] = append(f.areaTiers[tierTerms], item{source: "keywords", text: k})
	}
	for _, t := range field(get(cb+"ancestors"), "term") {
		f.areaTiers[tierDerived] = append(f.areaTiers[tierDerived], item{source: "MeSH ancestor", text: t})
	}
	if list, ok := get(cb + "browseBranches").([]any); ok {
		for _, b := range list {
			bm, _ := b.(map[string]any)
			f.branches = append(f.branches, item{source: "MeSH branch", text: str(bm["name"]), key: str(bm["abbrev"])})
		}
	}
	for _, t := range field(get(ps+"armsInterventionsModule.interventions"), "type") {
		f.types = append(f.types, canonicalType(t, "OTHER"))
	}
	f.typesFrom = "interventions[].type"
	f.studyType, f.typeFrom = canonicalStudyType(str(get(ps+"designModule.studyType"))), "studyType"
	f.purpose, f.purposeOf = upperSnake(str(get(ps+"designModule.designInfo.primaryPurpose"))), "primaryPurpose"
	for _, a := range strs(get(ps + "eligibilityModule.stdAges")) {
		f.stdAges = append(f.stdAges, upperSnake(a))
	}
	f.agesFrom = "stdAges"
	f.minAge, f.minAgeFrom = str(get(ps+"eligibilityModule.minimumAge")), "minimumAge"
	f.maxAge, f.maxAgeFrom = str(get(ps+"eligibilityModule.maximumAge")), "maximumAge"
	f.criteria = str(get(ps + "eligibilityModule.eligibilityCriteria"))
	return f
}

// extractFlat reads a flat record. Keys are matched ignoring case, "_", "-" and spaces, so
// "study_type", "Study Type" and "studyType" are the same key.
func extractFlat(m map[string]any) facts {
	keys := make(map[string]string, len(m))
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic when two spellings of one key are present
	for _, k := range names {
		nk := strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(k))
		if _, dup := keys[nk]; !dup {
			keys[nk] = k
		}
	}
	first := func(candidates ...string) (any, string) {
		for _, c := range candidates {
			if k, ok := keys[c]; ok && m[k] != nil && m[k] != "" {
				return m[k], k
			}
		}
		return nil, ""
	}
	var f facts
	for _, c := range []string{"title", "brieftitle", "officialtitle", "studytitle"} {
		if v, k := first(c); k != "" {
			f.areaTiers[tierRecord] = append(f.areaTiers[tierRecord], item{source: k, text: str(v)})
		}
	}
	if v, k := first("conditions", "condition"); k != "" {
		for _, c := range splitList(v) {
			f.areaTiers[tierRecord] = append(f.areaTiers[tierRecord], item{source: k, text: c})
		}
	}
	for _, c := range []string{"keywords", "keyword", "meshterms", "conditionmeshterms"} {
		if v, k := first(c); k != "" {
			for _, t := range splitList(v) {
				f.areaTiers[tierTerms] = append(f.areaTiers[tierTerms], item{source: k, text: t})
			}
		}
	}
	if v, k := first("interventiontype", "interventiontypes"); k != "" {
		for _, t := range splitList(v) {
			f.types = append(f.types, canonicalType(t, "OTHER"))
		}
		f.typesFrom = k
	} else if v, k := first("interventions", "intervention"); k != "" {
		f.types, f.typesFrom = flatInterventionTypes(v), k
	}
	if v, k := first("studytype"); k != "" {
		f.studyType, f.typeFrom = canonicalStudyType(str(v)), k
	}
	if v, k := first("primarypurpose", "purpose"); k != "" {
		f.purpose, f.purposeOf = upperSnake(str(v)), k
	}
	if v, k := first("stdages", "agegroups", "agegroup"); k != "" {
		f.stdAges, f.agesFrom = ageGroups(splitList(v)), k
	}
	if v, k := first("minage", "minimumage"); k != "" {
		f.minAge, f.minAgeFrom = str(v), k
	}
	if v, k := first("maxage", "maximumage"); k != "" {
		f.maxAge, f.maxAgeFrom = str(v), k
	}
	if v, k := first("eligibilitycriteria", "eligibility", "criteria"); k != "" {
		f.criteria = str(v)
	} else {
		var parts []string
		for _, c := range []string{"inclusioncriteria", "exclusioncriteria"} {
			if v, k := first(c); k != "" {
				parts = append(parts, str(v))
			}
		}
		f.criteria = strings.Join(parts, "\n")
	}
	return f
}

// flatInterventionTypes reads types from a flat "interventions" value: objects with "type", or
// strings written "Drug: Aspirin" as in ClinicalTrials.gov's CSV export. Anything else is OTHER.
func flatInterventionTypes(v any) []string {
	var types []string
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if em, ok := e.(map[string]any); ok {
				types = append(types, canonicalType(str(em["type"]), "OTHER"))
				continue
			}
			types = append(types, typeOfLabel(str(e)))
		}
		return types
	}
	for _, s := range splitList(v) {
		types = append(types, typeOfLabel(s))
	}
	return types
}

// typeOfLabel reads the type of "Drug: Aspirin"; OTHER when there is no known type prefix.
func typeOfLabel(s string) string {
	if before, _, ok := strings.Cut(s, ":"); ok {
		return canonicalType(before, "OTHER")
	}
	return "OTHER"
}

// canonicalType spells an intervention type as ClinicalTrials.gov does; unknown types give def.
func canonicalType(s, def string) string {
	switch upperSnake(s) {
	case "DRUG", "DRUGS", "MEDICATION":
		return "DRUG"
	case "BIOLOGICAL", "BIOLOGIC", "BIOLOGICS", "VACCINE":
		return "BIOLOGICAL"
	case "DEVICE", "MEDICAL_DEVICE":
		return "DEVICE"
	case "PROCEDURE", "PROCEDURE_SURGERY", "SURGERY", "SURGICAL":
		return "PROCEDURE"
	case "RADIATION", "RADIOTHERAPY":
		return "RADIATION"
	case "BEHAVIORAL", "BEHAVIOURAL":
		return "BEHAVIORAL"
	case "DIETARY_SUPPLEMENT", "SUPPLEMENT", "DIETARY":
		return "DIETARY_SUPPLEMENT"
	case "DIAGNOSTIC_TEST", "DIAGNOSTIC":
		return "DIAGNOSTIC_TEST"
	case "GENETIC", "GENE_THERAPY":
		return "GENETIC"
	case "COMBINATION_PRODUCT", "COMBINATION":
		return "COMBINATION_PRODUCT"
	case "OTHER":
		return "OTHER"
	default:
		return def
	}
}

// typeValue maps a ClinicalTrials.gov intervention type to the schema's value.
func typeValue(t string) string {
	switch t {
	case "DRUG":
		return "drug"
	case "BIOLOGICAL":
		return "biological"
	case "DEVICE":
		return "device"
	case "PROCEDURE":
		return "procedure_surgery"
	case "RADIATION":
		return "radiation"
	case "BEHAVIORAL":
		return "behavioral"
	case "DIETARY_SUPPLEMENT":
		return "dietary_supplement"
	case "DIAGNOSTIC_TEST":
		return "diagnostic_test"
	case "GENETIC":
		return "genetic"
	case "COMBINATION_PRODUCT":
		return "combination"
	default:
		return "other"
	}
}

func canonicalStudyType(s string) string {
	u := upperSnake(s)
	switch {
	case strings.Contains(u, "OBSERVATIONAL"):
		return "OBSERVATIONAL"
	case strings.Contains(u, "EXPANDED"):
		return "EXPANDED_ACCESS"
	case strings.Contains(u, "INTERVENTIONAL"):
		return "INTERVENTIONAL"
	default:
		return ""
	}
}

// decideIntervention applies the intervention rules of the README.
func decideIntervention(f facts) (string, string) {
	observational := f.studyType == "OBSERVATIONAL"
	if len(f.types) == 0 {
		if observational {
			return "none_observational", fmt.Sprintf("intervention none: %s OBSERVATIONAL, no interventions", f.typeFrom)
		}
		return "other", "intervention other: no intervention types"
	}
	count := map[string]int{}
	var kinds []string
	for _, t := range f.types {
		if count[t] == 0 {
			kinds = append(kinds, t)
		}
		count[t]++
	}
	sort.Slice(kinds, func(i, j int) bool {
		if count[kinds[i]] != count[kinds[j]] {
			return count[kinds[i]] > count[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	seen := describeCounts(kinds, count)
	if observational && len(kinds) == 1 && kinds[0] == "OTHER" {
		return "none_observational", fmt.Sprintf("intervention none: %s OBSERVATIONAL, %s %s", f.typeFrom, f.typesFrom, seen)
	}
	if len(kinds) > 1 && count["OTHER"] > 0 {
		delete(count, "OTHER")
		kinds = removeString(kinds, "OTHER")
	}
	if len(kinds) == 1 {
		return typeValue(kinds[0]), fmt.Sprintf("intervention from %s %s", f.typesFrom, seen)
	}
	total := 0
	for _, k := range kinds {
		total += count[k]
	}
	if top := kinds[0]; count[top]*2 > total {
		return typeValue(top), fmt.Sprintf("intervention from %s %s (majority %s)", f.typesFrom, seen, top)
	}
	return "combination", fmt.Sprintf("intervention combination: %s %s", f.typesFrom, seen)
}

// describeCounts writes "DRUG x2, OTHER".
func describeCounts(kinds []string, count map[string]int) string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k
		if count[k] > 1 {
			parts[i] += " x" + strconv.Itoa(count[k])
		}
	}
	return strings.Join(parts, ", ")
}

func removeString(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// decidePurpose applies the purpose rules of the README.
func decidePurpose(f facts) (string, string) {
	switch f.studyType {
	case "OBSERVATIONAL":
		return "observational", fmt.Sprintf("purpose from %s OBSERVATIONAL", f.typeFrom)
	case "EXPANDED_ACCESS":
		return "treatment", fmt.Sprintf("purpose from %s EXPANDED_ACCESS", f.typeFrom)
	}
	var v string
	switch f.purpose {
	case "TREATMENT":
		v = "treatment"
	case "PREVENTION", "PREVENTIVE":
		v = "prevention"
	case "DIAGNOSTIC", "DIAGNOSIS":
		v = "diagnostic"
	case "SUPPORTIVE_CARE":
		v = "supportive_care"
	case "SCREENING":
		v = "screening"
	case "HEALTH_SERVICES_RESEARCH":
		v = "health_services_research"
	case "BASIC_SCIENCE":
		v = "basic_science"
	case "":
		return "other", "purpose other: no primary purpose"
	default: // DEVICE_FEASIBILITY, ECT, OTHER
		v = "other"
	}
	return v, fmt.Sprintf("purpose from %s %s", f.purposeOf, f.purpose)
}

// decidePopulation applies the population rules of the README.
func decidePopulation(f facts) (string, string) {
	var child, adult, older bool
	why := ""
	if len(f.stdAges) > 0 {
		for _, a := range f.stdAges {
			switch a {
			case "CHILD":
				child = true
			case "ADULT":
				adult = true
			case "OLDER_ADULT":
				older = true
			}
		}
		why = fmt.Sprintf("population from %s %s", f.agesFrom, strings.Join(f.stdAges, ", "))
	}
	if !child && !adult && !older {
		lo, hasLo := ageYears(f.minAge)
		hi, hasHi := ageYears(f.maxAge)
		if !hasLo && !hasHi {
			return "unknown", "population unknown: no ages"
		}
		if !hasHi {
			hi = math.Inf(1)
		}
		child = lo < childMaxYears
		adult = lo < olderAdultFromYr && hi >= childMaxYears
		older = hi >= olderAdultFromYr
		var parts []string
		if hasLo {
			parts = append(parts, fmt.Sprintf("%s %s", f.minAgeFrom, f.minAge))
		}
		if hasHi {
			parts = append(parts, fmt.Sprintf("%s %s", f.maxAgeFrom, f.maxAge))
		}
		why = "population from " + strings.Join(parts, ", ")
	}
	switch {
	case child && older:
		return "all_ages", why
	case child && adult:
		return "pediatric_and_adult", why
	case child:
		return "pediatric", why
	case adult && older:
		return "adult_and_older_adult", why
	case adult:
		return "adult", why
	case older:
		return "older_adult", why
	default:
		return "unknown", "population unknown: no ages"
	}
}

// ageGroups reads free-form age groups ("Child, Adult, Older Adult", "OLDER_ADULT") in
// ClinicalTrials.gov's order.
func ageGroups(list []string) []string {
	u := upperSnake(strings.Join(list, " "))
	older := strings.Contains(u, "OLDER")
	child := strings.Contains(u, "CHILD") || strings.Contains(u, "PEDIATRIC")
	adult := strings.Contains(strings.ReplaceAll(u, "OLDER_ADULT", ""), "ADULT")
	var out []string
	if child {
		out = append(out, "CHILD")
	}
	if adult {
		out = append(out, "ADULT")
	}
	if older {
		out = append(out, "OLDER_ADULT")
	}
	return out
}

// ageYears reads an age such as "18 Years", "6 Months", "30 Days" or "18" in years; "N/A" and
// other text are not ages.
func ageYears(s string) (float64, bool) {
	fields := strings.Fields(strings.ToLower(s))
	if len(fields) == 0 || len(fields) > 2 {
		return 0, false
	}
	n, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if len(fields) == 1 {
		return n, true
	}
	switch unit := strings.TrimSuffix(fields[1], "s"); unit {
	case "year":
		return n, true
	case "month":
		return n / 12, true
	case "week":
		return n / 52, true
	case "day":
		return n / 365, true
	case "hour", "minute":
		return 0, true
	default:
		return 0, false
	}
}

// decideComplexity applies the eligibility thresholds of the README.
func decideComplexity(criteria string) (string, string) {
	words := len(strings.Fields(criteria))
	if words == 0 {
		return "low", "complexity low: no eligibility criteria"
	}
	n := countCriteria(criteria)
	level := "medium"
	switch {
	case words < lowWords:
		level = "low"
	case words >= highWords:
		level = "high"
	}
	switch {
	case n >= highCriteria:
		level = "high"
	case n >= mediumCriteria && level == "low":
		level = "medium"
	}
	noun := "criteria"
	if n == 1 {
		noun = "criterion"
	}
	return level, fmt.Sprintf("complexity from %d words, %d %s", words, n, noun)
}

// countCriteria counts bulleted or numbered lines; without any, the non-empty lines that are
// not headings such as "Inclusion Criteria:".
func countCriteria(text string) int {
	bullet := regexp.MustCompile(`^\s*(?:[*•·\-–]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\w{1,3}\))\s+\S`)
	bullets, lines := 0, 0
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if bullet.MatchString(line) {
			bullets++
			continue
		}
		if !strings.HasSuffix(t, ":") {
			lines++
		}
	}
	if bullets > 0 {
		return bullets
	}
	return lines
}

// rationale joins the reasons, cut to maxRationale characters.
func rationale(area areaDecision, reasons ...string) string {
	a := "area other: no condition, title or MeSH term matched an area"
	if area.source != "" {
		a = fmt.Sprintf("area from %s %q", area.source, cut(area.evidence, maxEvidenceChars))
	}
	s := strings.Join(append([]string{a}, reasons...), "; ") + "."
	s = strings.ToUpper(s[:1]) + s[1:]
	return cut(s, maxRationale)
}

// cut shortens s to at most n characters, ending in "…" when cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// str returns a string or number value as text, and "" for anything else.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	default:
		return ""
	}
}

// strs returns the strings of an array value.
func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s := str(e); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// field returns a string field of every object of an array value.
func field(v any, key string) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if s := str(m[key]); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// splitList reads a list value of a flat record: an array of strings (or objects with "name"),
// or one string with items separated by ";" or "|".
func splitList(v any) []string {
	if list, ok := v.([]any); ok {
		var out []string
		for _, e := range list {
			if m, ok := e.(map[string]any); ok {
				e = m["name"]
			}
			if s := str(e); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var out []string
	for _, part := range strings.FieldsFunc(str(v), func(r rune) bool { return r == ';' || r == '|' }) {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// upperSnake spells "Supportive Care" as SUPPORTIVE_CARE.
func upperSnake(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.TrimSpace(s) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteString(strings.ToUpper(string(r)))
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}
