package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// realInput writes the first n of the real trial records replicated as often as needed, copy k
// of a record having the ID <nctId>-r<k> (as replicate() in the coordinator's fault tests), to
// dir/trials-<n>.jsonl, and returns its path. An existing file is reused.
func realInput(sample, dir string, n int) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("trials-%d.jsonl", n))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	data, err := os.ReadFile(sample)
	if err != nil {
		return "", fmt.Errorf("read sample: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	recs := make([]map[string]any, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &recs[i]); err != nil {
			return "", fmt.Errorf("sample line %d: %w", i+1, err)
		}
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		rec := recs[i%len(recs)]
		ident := rec["protocolSection"].(map[string]any)["identificationModule"].(map[string]any)
		orig, _ := ident["nctId"].(string)
		if k := strings.Index(orig, "-r"); k >= 0 {
			orig = orig[:k]
		}
		ident["nctId"] = fmt.Sprintf("%s-r%d", orig, i/len(recs))
		b, err := json.Marshal(rec)
		if err != nil {
			f.Close()
			return "", err
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}

// flatInput writes n small flat records ({"nct_id":"NCT%08d","title":...,"conditions":[...],
// "interventions":[...],"phase":...}, about 200 bytes each) to dir/flat-<n>.jsonl.
func flatInput(dir string, n int) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("flat-%d.jsonl", n))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	conds := []string{"Breast Cancer", "Type 2 Diabetes", "Hypertension", "Asthma", "Major Depressive Disorder",
		"HIV Infections", "Rheumatoid Arthritis", "Chronic Kidney Disease", "Psoriasis", "Glaucoma",
		"Heart Failure", "Alzheimer Disease", "COVID-19", "Obesity", "Migraine", "Sickle Cell Disease"}
	kinds := []string{"DRUG", "BIOLOGICAL", "DEVICE", "BEHAVIORAL", "PROCEDURE", "DIETARY_SUPPLEMENT"}
	names := []string{"metformin", "pembrolizumab", "placebo", "exercise program", "stent", "vitamin D",
		"cognitive behavioural therapy", "adalimumab", "insulin glargine", "vaccine"}
	phases := []string{"PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"}
	rng := rand.New(rand.NewPCG(1, 2))
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		c := conds[rng.IntN(len(conds))]
		b.Reset()
		fmt.Fprintf(&b, `{"nct_id":"NCT%08d","title":"A study of %s in %s","conditions":[%q],"interventions":[{"type":%q,"name":%q}],"phase":%q}`,
			i, names[rng.IntN(len(names))], c, c, kinds[rng.IntN(len(kinds))], names[rng.IntN(len(names))], phases[rng.IntN(len(phases))])
		b.WriteByte('\n')
		w.Write(b.Bytes())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}
