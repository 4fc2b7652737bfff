package offline

import (
	"sort"
	"strconv"
	"strings"

	"github.com/trialcat/trialcat/internal/record"
)

// facts are the fields of a record the rules use, from either record shape.
type facts struct {
	areaTiers [numTiers][]item
	branches  []item
	types     []string // interventions' ClinicalTrials.gov types (DRUG, ...), one per intervention
	names     []string // the interventions' names, beside types ("" where unknown)
	typesFrom string
	// targets are the texts that say what the trial aims at (titles, intervention names): among
	// several conditions, the area they name wins.
	targets []string
	// healthy says the trial takes healthy volunteers (eligibilityModule.healthyVolunteers).
	healthy    bool
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
	if list, ok := get(ps + "armsInterventionsModule.interventions").([]any); ok {
		for _, e := range list {
			em, _ := e.(map[string]any)
			if t := str(em["type"]); t != "" {
				f.types = append(f.types, canonicalType(t, "OTHER"))
				f.names = append(f.names, str(em["name"]))
			}
		}
	}
	f.typesFrom = "interventions[].type"
	for _, p := range []string{"identificationModule.briefTitle", "identificationModule.officialTitle"} {
		f.targets = append(f.targets, str(get(ps+p)))
	}
	f.targets = append(f.targets, f.names...)
	f.healthy, _ = get(ps + "eligibilityModule.healthyVolunteers").(bool)
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
			f.targets = append(f.targets, str(v))
		}
	}
	if v, k := first("healthyvolunteers", "acceptshealthyvolunteers"); k != "" {
		switch strings.ToLower(strings.TrimSpace(str(v))) {
		case "yes", "true", "y", "accepts healthy volunteers":
			f.healthy = true
		}
	}
	if v, k := first("conditions", "condition"); k != "" {
		for _, c := range splitList(v) {
			f.areaTiers[tierRecord] = append(f.areaTiers[tierRecord], item{source: "conditions", text: c})
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
