package offline

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// biologicNames are words in an intervention's name that make it a biological whatever type the
// registry gives it (cell and gene therapies, antibodies, vaccines are often registered as DRUG
// or GENETIC). "*mab$" is the ending of every monoclonal antibody's name.
var biologicNames = keywords(
	"car t$", "car nk$", "chimeric antigen receptor", "cell therap", "t cell", "nk cell", "stem cell",
	"mesenchymal", "dendritic cell", "til$", "tils$", "tumor infiltrating lymphocyte", "autologous", "allogeneic",
	"gene therap", "gene transfer", "aav", "lentivir", "retrovir", "oncolytic", "*mab$", "vaccin", "immunoglobulin",
	"plasma$", "antibod",
)

// biologicsByName turns DRUG, GENETIC and OTHER interventions whose names are biologics into
// BIOLOGICAL (the taxonomy's "vaccines, antibodies, cell therapies").
func biologicsByName(f *facts) {
	for i, t := range f.types {
		if i >= len(f.names) || f.names[i] == "" || (t != "DRUG" && t != "GENETIC" && t != "OTHER") {
			continue
		}
		if matchesAny(normalize(f.names[i]), biologicNames()) {
			f.types[i] = "BIOLOGICAL"
		}
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
