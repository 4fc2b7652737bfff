// Package offline categorizes a clinical trial into the default schema (package taxonomy)
// without a model and without a network, from the fields ClinicalTrials.gov already structures:
// conditions and titles, MeSH terms and branches, intervention types, design, age groups and
// eligibility criteria. It is deterministic: the same record always gets the same answer.
//
// The rules are documented in internal/taxonomy/README.md ("Offline rules"). Records that are
// not in the ClinicalTrials.gov API v2 shape (flat objects with keys such as title, conditions,
// keywords, intervention_type, phase, study_type, eligibility and min_age) get the same rules
// applied to those keys, with "other" or "unknown" where nothing applies.
package offline
