package offline

import (
	"strings"
	"sync"
	"unicode"
)

// Therapeutic areas, in the schema's order. The order also breaks ties.
const (
	areaOncology     = "oncology"
	areaCardio       = "cardiovascular"
	areaMetabolic    = "metabolic_endocrine"
	areaNeurology    = "neurology"
	areaPsychiatry   = "psychiatry_mental_health"
	areaInfectious   = "infectious_disease"
	areaRespiratory  = "respiratory"
	areaMusculo      = "musculoskeletal_pain"
	areaImmunology   = "immunology_rheumatology"
	areaHematology   = "hematology_non_malignant"
	areaGastro       = "gastroenterology_hepatology"
	areaNephrology   = "nephrology_urology"
	areaDermatology  = "dermatology"
	areaOphthalmo    = "ophthalmology"
	areaENT          = "ent_oral_dental"
	areaWomens       = "womens_health_reproductive"
	areaPediatrics   = "pediatrics_neonatal"
	areaOther        = "other"
	numAreas         = 17 // areas with keyword rules: every area but other
	numTiers         = 3
	maxEvidenceChars = 40
)

// areaRule is an area and the keywords that point to it.
//
// A keyword matches normalized text (lower case, every run of characters other than letters and
// digits turned into one space):
//
//	"neoplas"   at the start of a word: "neoplasm", "neoplasms", "neoplastic"
//	"copd$"     a whole word only
//	"*sarcoma"  anywhere, also inside a word: "osteosarcoma"
//
// Keywords with spaces match word sequences ("back pain").
type areaRule struct {
	area     string
	keywords []string
}

// areaRules lists the keywords of every area, in tie-break order (oncology first).
func areaRules() []areaRule {
	return []areaRule{
		{areaOncology, []string{
			"cancer", "neoplas", "tumor", "tumour", "*carcinom", "malignan", "*lymphoma", "*leukemi", "*leukaemi",
			"myeloma", "*sarcoma", "melanoma", "*glioma", "*blastoma", "meningioma", "mesothelioma", "metasta",
			"oncolog", "nsclc$", "sclc$", "dlbcl$", "cll$", "aml$", "mds$", "hodgkin", "myelodysplas",
			"myelofibrosis", "myeloproliferative", "waldenstr", "macroglobulinemia", "mycosis fungoides",
			"seminoma", "thymoma", "chemotherap", "chemoradi", "lymphoid malignan",
		}},
		{areaCardio, []string{
			"heart", "cardi", "coronary", "myocard", "atrial", "ventric", "arrhythmi", "tachycardi",
			"hypertensi", "blood pressure", "vascular", "aort", "angina", "atherosclero", "arteri", "artery",
			"venous thrombo", "thromboembol", "embolism", "deep vein", "stent", "valve", "valvular",
			"antithrombotic", "anticoagula", "peripheral arter", "aneurysm",
		}},
		{areaMetabolic, []string{
			"diabet", "prediabet", "obes", "overweight", "weight loss", "insulin", "glyc", "glucose",
			"thyroid", "hypothyroid", "hyperthyroid", "parathyroid", "hyperparathyroid", "adrenal",
			"cushing", "pituitar", "growth hormone", "metabolic", "metabolism", "lipid", "dyslipid",
			"hyperlipid", "cholesterol", "hypercholesterol", "triglycerid", "nutrition", "malnutrition",
			"diet$", "diets$", "dietary", "vitamin", "phenylketon", "bariatric", "gastric bypass",
		}},
		{areaNeurology, []string{
			"neurolog", "nervous system", "brain", "cerebr", "stroke", "epilep", "seizure", "migraine",
			"headache", "parkinson", "alzheimer", "dementia", "cognitive impair", "neurocognitive",
			"multiple sclerosis", "neuropath", "neuralgi", "spinal cord", "amyotrophic", "als$",
			"huntington", "ataxi", "dystoni", "tremor", "insomni", "sleep", "narcolep", "neuromuscular",
			"myasthenia", "concussion", "traumatic brain", "delirium", "central nervous", "cns$",
			"neurodegenerat", "movement disorder", "restless legs", "cerebral palsy", "nerve conduction",
		}},
		{areaPsychiatry, []string{
			"depress", "anxiety", "anxious", "mental", "psychiatr", "schizophren", "psychos", "psychotic",
			"bipolar", "mood", "ptsd$", "posttraumatic stress", "post traumatic stress", "stress disorder",
			"psychological stress", "stress psychological", "stress relief", "perceived stress", "autism",
			"autistic", "adhd$", "attention deficit", "obsessive", "ocd$", "eating disorder", "binge",
			"bulimi", "anorexia nervosa", "substance use", "substance related", "alcohol use",
			"alcohol depend", "alcoholism", "opioid use", "addict", "smoking cessation", "tobacco use",
			"nicotine depend", "suicid", "phobi", "panic", "behavioral health",
		}},
		{areaInfectious, []string{
			"infect", "covid", "sars cov", "coronavirus", "hiv$", "aids$", "hepatitis b", "hepatitis c",
			"hbv$", "hcv$", "tubercul", "malaria", "influenza", "vaccin", "sepsis", "septic", "pneumonia",
			"bacter", "viral", "virus", "fungal", "candid", "herpes", "hpv$", "papillomavirus", "antibiotic",
			"antimicrob", "parasit", "helminth", "dengue", "ebola", "zika", "rsv$", "respiratory syncytial",
			"cytomegalovirus", "cmv$", "clostridi", "staphylococ", "streptococ", "lyme", "communicable",
		}},
		{areaRespiratory, []string{
			"asthma", "copd$", "chronic obstructive pulmonary", "pulmonary", "lung", "respirat", "bronch",
			"emphysema", "cystic fibrosis", "interstitial lung", "sleep apnea", "sleep apnoea", "apnea",
			"osa$", "airway", "mechanical ventilation", "dyspnea", "cough", "ards$", "pleural",
		}},
		{areaMusculo, []string{
			"pain", "analgesi", "osteoarthr", "arthrosis", "joint", "knee", "hip$", "shoulder", "spine",
			"spinal", "disc$", "discs$", "disk$", "disks$", "intervertebral", "herniat", "lumbar",
			"cervical spondyl", "cervical disc", "cervical degenerat", "cervical radiculopath",
			"cervical myelopath", "radiculopath", "radiculopathy", "sciatic", "myelopath", "spondyl",
			"scoliosis", "fracture", "osteopor", "tendin", "tendon", "ligament", "sports injur",
			"muscle", "muscular", "musculoskeletal", "orthop", "fibromyalgia", "bone", "discectom",
			"diskectom", "discogenic", "vertebr", "nerve block", "plane block", "kinesiophobi", "myalgia",
			"sprain", "rotator cuff", "carpal tunnel", "fusion surgery", "spinal fusion",
		}},
		{areaImmunology, []string{
			"rheumat", "lupus", "sle$", "autoimmun", "allerg", "hypersensitiv", "anaphyla",
			"immunodeficien", "spondyloarthrit", "ankylosing", "psoriatic arthritis", "vasculitis",
			"sjogren", "sjögren", "scleroderma", "systemic sclerosis", "still s disease", "stills disease",
			"juvenile idiopathic arthritis", "juvenile arthritis", "arthritis juvenile", "gout",
			"behcet", "behçet", "sarcoidosis", "transplant rejection", "graft versus host", "gvhd$",
			"immune system", "immune mediated",
		}},
		{areaHematology, []string{
			"anemi", "anaemi", "hemophilia", "haemophilia", "thalassemi", "thalassaemi", "sickle",
			"thrombocytopeni", "neutropeni", "von willebrand", "hemoglobin", "haemoglobin",
			"iron deficiency", "coagul", "bleeding disorder", "hematolog", "haematolog", "aplastic",
			"hemostatic", "haemostatic", "transfusion", "polycythemia", "thrombocythemia", "blood disease",
		}},
		{areaGastro, []string{
			"gastr", "stomach", "intestin", "bowel", "colitis", "crohn", "ibd$", "ibs$", "celiac", "coeliac",
			"liver", "hepat", "cirrho", "nafld$", "nash$", "masld$", "mash$", "fatty liver", "pancrea",
			"esophag", "oesophag", "reflux", "gerd$", "dyspeps", "constipat", "diarrh", "colon", "colorectal",
			"rectal", "biliar", "gallbladder", "gall bladder", "cholang", "portal hypertension", "digestive",
			"gut$", "helicobacter", "peptic", "ulcerative", "duoden", "endoscop",
		}},
		{areaNephrology, []string{
			"kidney", "renal", "nephr", "dialys", "hemodialys", "haemodialys", "urinar", "urolog",
			"urogenital", "bladder", "prostat", "incontinence", "nocturia", "ckd$", "esrd$", "glomerul",
			"urethr", "urolith", "erectile", "lower urinary tract", "luts$",
		}},
		{areaDermatology, []string{
			"skin", "dermat", "psoria", "eczema", "acne", "rosacea", "vitiligo", "alopecia", "urticaria",
			"hidradenitis", "scar$", "scars$", "keloid", "lichen", "pemphig", "burn$", "burns$",
			"burn injur", "hyperhidrosis", "melasma", "actinic", "wart", "cutaneous", "wound healing",
			"pressure ulcer", "diabetic foot", "pruritus",
		}},
		{areaOphthalmo, []string{
			"eye$", "eyes$", "ocular", "ophthalm", "retin", "macula", "glaucoma", "cataract", "myopi",
			"uveit", "cornea", "keratit", "conjunctiv", "dry eye", "vision", "visual impair", "blind",
			"strabism", "amblyop", "intraocular",
		}},
		{areaENT, []string{
			"ear$", "ears$", "hearing", "tinnitus", "otitis", "deaf", "cochlea", "vestibular", "vertigo",
			"sinusit", "rhinosinusit", "rhinit", "nasal", "nose$", "throat", "tonsil", "pharyng", "laryng",
			"otolaryng", "otorhinolaryng", "oral mucos", "oral lichen", "lichen planus oral", "oral cavity",
			"mouth", "stomat", "dental", "dentist", "tooth", "teeth", "periodont", "gingiv", "caries",
			"endodont", "orthodont", "xerostomia",
		}},
		{areaWomens, []string{
			"pregnan", "preeclampsia", "pre eclampsia", "eclampsia", "gestation", "obstetric", "labor induction",
			"labour", "cesarean", "caesarean", "postpartum", "miscarriage", "infertil", "ivf$",
			"in vitro fertili", "polycystic ovar", "pcos$", "endometriosis", "fibroid", "menopaus",
			"menstrua", "dysmenorrh", "contracep", "vagin", "vulv", "gynecolog", "gynaecolog",
			"women s health", "breastfeeding", "lactation", "intrauterine", "preterm labor", "preterm birth",
		}},
		{areaPediatrics, []string{
			"neonat", "newborn", "preterm infant", "prematurity", "bronchopulmonary dysplasia",
			"necrotizing enterocolitis", "congenital", "birth weight", "kawasaki", "sudden infant",
			"child development", "developmental delay",
		}},
	}
}

// branchArea maps a ClinicalTrials.gov condition browse branch (derivedSection.
// conditionBrowseModule.browseBranches[].abbrev) to an area. Branches that name no organ system
// (All, Rare, BC23 Symptoms and General Pathology, BXS Urinary Tract, Sexual Organs, and
// Pregnancy Conditions, BC21, BC22, BC26) are not mapped.
func branchArea(abbrev string) string {
	switch abbrev {
	case "BC01", "BC02", "BC03": // Infections; Viral Diseases, Parasitic Diseases (older releases)
		return areaInfectious
	case "BC04": // Neoplasms
		return areaOncology
	case "BC05": // Musculoskeletal Diseases
		return areaMusculo
	case "BC06": // Digestive System Diseases
		return areaGastro
	case "BC07", "BC09": // Mouth and Tooth Diseases; Ear, Nose, and Throat Diseases
		return areaENT
	case "BC08": // Respiratory Tract (Lung and Bronchial) Diseases
		return areaRespiratory
	case "BC10": // Nervous System Diseases
		return areaNeurology
	case "BC11": // Eye Diseases
		return areaOphthalmo
	case "BC14": // Heart and Blood Diseases
		return areaCardio
	case "BC15": // Blood and Lymph Conditions
		return areaHematology
	case "BC16": // Diseases and Abnormalities at or Before Birth
		return areaPediatrics
	case "BC17": // Skin and Connective Tissue Diseases
		return areaDermatology
	case "BC18", "BC19": // Nutritional and Metabolic Diseases; Gland and Hormone Related Diseases
		return areaMetabolic
	case "BC20": // Immune System Diseases
		return areaImmunology
	case "BXM": // Behaviors and Mental Disorders
		return areaPsychiatry
	default:
		return ""
	}
}

// normalize lower-cases s and turns every run of characters other than letters and digits into
// one space, with a space at both ends, so keywords can match at word starts.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(' ')
	space := true
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
			space = false
			continue
		}
		if r == '\'' || r == '’' {
			continue // "Still's" reads "stills" as well as "still s"
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

// compile turns the keywords of every rule into substrings of normalized text: " word" for a
// word start, " word " for a whole word, "word" for anywhere.
func compile(rules []areaRule) [][]string {
	out := make([][]string, len(rules))
	for i, r := range rules {
		for _, k := range r.keywords {
			switch {
			case strings.HasPrefix(k, "*") && strings.HasSuffix(k, "$"): // the end of a word
				out[i] = append(out[i], strings.TrimLeft(normalize(k[1:len(k)-1]), " "))
			case strings.HasPrefix(k, "*"):
				out[i] = append(out[i], strings.TrimSpace(normalize(k[1:])))
			case strings.HasSuffix(k, "$"):
				out[i] = append(out[i], normalize(k[:len(k)-1]))
			default:
				out[i] = append(out[i], strings.TrimRight(normalize(k), " "))
			}
		}
	}
	return out
}

// matchesAny reports whether one of the compiled keywords occurs in normalized text.
func matchesAny(text string, keywords []string) bool {
	for _, k := range keywords {
		if strings.Contains(text, k) {
			return true
		}
	}
	return false
}

// item is one piece of text that may point to an area.
type item struct {
	source string // the field it came from, for the rationale
	text   string
	key    string // browse branches only: the abbreviation, such as BC04
}

// tiers of evidence, strongest first.
const (
	tierRecord  = iota // conditions and titles, as the sponsor wrote them
	tierTerms          // MeSH terms of the conditions, and keywords
	tierDerived        // MeSH ancestors and browse branches
)

// areaDecision is the chosen area and why.
type areaDecision struct {
	area     string
	source   string // field of the deciding evidence; "" when nothing matched
	evidence string
}

// compiledRules builds the keyword table once per process. It is a package-level value on
// purpose: the table is immutable after it is built and the same for every record, and
// rebuilding it per record was a third of the offline worker's CPU.
var compiledRules = sync.OnceValues(func() ([]areaRule, [][]string) {
	rules := areaRules()
	return rules, compile(rules)
})

// decideArea scores every area on each tier of evidence and picks one. An item counts once for
// each area it matches, except that an item naming a cancer counts for oncology only. The first
// tier with any match decides; among its areas the highest count wins, ties go to the later tiers'
// counts and then to the order of areaRules. branches are browse-branch abbreviations (tier 3).
func decideArea(f facts) areaDecision {
	tiers, branches := f.areaTiers, f.branches
	if d, ok := healthyNoDisease(f); ok {
		return d
	}
	rules, keywords := compiledRules()
	// Areas the titles or intervention names aim at: among several conditions, the one the
	// intervention targets wins over the others.
	var targeted [numAreas]bool
	for _, t := range f.targets {
		if t == "" {
			continue
		}
		text := normalize(t)
		for a := range rules {
			targeted[a] = targeted[a] || matchesAny(text, keywords[a])
		}
	}
	var counts [numTiers][numAreas]int
	var first [numTiers][numAreas]*item
	for t := range tiers {
		for i := range tiers[t] {
			it := &tiers[t][i]
			text := normalize(it.text)
			var hit [numAreas]bool
			for a := range rules {
				hit[a] = matchesAny(text, keywords[a])
			}
			if hit[0] { // a cancer: oncology only
				hit = [numAreas]bool{true}
			}
			for a := range hit {
				if hit[a] {
					counts[t][a]++
					if first[t][a] == nil {
						first[t][a] = it
					}
				}
			}
		}
	}
	for i := range branches {
		b := &branches[i]
		area := branchArea(b.key)
		for a, r := range rules {
			if r.area == area {
				counts[tierDerived][a]++
				if first[tierDerived][a] == nil {
					first[tierDerived][a] = b
				}
			}
		}
	}
	for t := range counts {
		anyTargeted := false
		for a := range counts[t] {
			anyTargeted = anyTargeted || (counts[t][a] > 0 && targeted[a])
		}
		best := -1
		for a := range counts[t] {
			if counts[t][a] == 0 || (anyTargeted && !targeted[a]) {
				continue
			}
			if best < 0 || better(counts, t, a, best) {
				best = a
			}
		}
		if best >= 0 {
			it := first[t][best]
			return areaDecision{area: rules[best].area, source: it.source, evidence: it.text}
		}
	}
	return areaDecision{area: areaOther}
}

// better reports whether area a beats area b from tier t on: its count there, then the counts of
// the later tiers in turn. An equal record keeps b, the earlier area.
func better(counts [numTiers][numAreas]int, t, a, b int) bool {
	for ; t < numTiers; t++ {
		if counts[t][a] != counts[t][b] {
			return counts[t][a] > counts[t][b]
		}
	}
	return false
}

// keywords compiles a keyword list (see areaRule) once.
func keywords(words ...string) func() []string {
	return sync.OnceValue(func() []string { return compile([]areaRule{{keywords: words}})[0] })
}

// noDisease marks a condition that is no disease: a study of healthy people or of normal
// physiology (the taxonomy's "other"); healthyWords a condition that says so itself.
var (
	noDisease    = keywords("healthy", "volunteer", "perception", "physiolog", "normal subjects")
	healthyWords = keywords("healthy", "volunteer")
)

// healthyNoDisease decides area other for a trial of healthy volunteers whose conditions name no
// disease ("Healthy", "Pain Perception").
func healthyNoDisease(f facts) (areaDecision, bool) {
	var conditions []item
	for _, it := range f.areaTiers[tierRecord] {
		if it.source == "conditions" {
			conditions = append(conditions, it)
		}
	}
	if len(conditions) == 0 {
		return areaDecision{}, false
	}
	for _, c := range conditions {
		text := normalize(c.text)
		if !matchesAny(text, noDisease()) {
			return areaDecision{}, false
		}
		if !f.healthy && !matchesAny(text, healthyWords()) {
			return areaDecision{}, false
		}
	}
	return areaDecision{area: areaOther, source: "healthy volunteers, conditions", evidence: conditions[0].text}, true
}
