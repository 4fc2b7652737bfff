// Command interventions-mcp is an example Model Context Protocol server for agent runs
// (coordinator --agent --mcp '...'). Over stdio it offers one tool, lookup_intervention: how the
// studies of a ClinicalTrials.gov JSON Lines file (the API's study JSON, one a line) list an
// intervention by name, with their intervention types, so that a model can check an
// intervention's kind against how registrants classify it.
//
//	interventions-mcp --records testdata/trials.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trialcat/trialcat/internal/buildinfo"
)

func main() {
	records := flag.String("records", "", "JSON Lines `FILE` of ClinicalTrials.gov studies to build the table from")
	flag.Parse()
	if *records == "" {
		fmt.Fprintln(os.Stderr, "interventions-mcp: --records FILE is required (JSON Lines of ClinicalTrials.gov studies)")
		os.Exit(2)
	}
	t, err := load(*records)
	if err != nil {
		fmt.Fprintln(os.Stderr, "interventions-mcp:", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "interventions-mcp: %d intervention names from %d studies\n", len(t.byName), t.studies)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, t, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "interventions-mcp:", err)
		os.Exit(1)
	}
}

// entry is what the studies say about one intervention name.
type entry struct {
	name    string
	types   map[string]int
	studies []string
}

type table struct {
	byName  map[string]*entry
	studies int
}

// load builds the table from a JSON Lines file of studies.
func load(path string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return read(f)
}

func read(r io.Reader) (*table, error) {
	t := &table{byName: map[string]*entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var st struct {
			ProtocolSection struct {
				IdentificationModule struct {
					NCTID string `json:"nctId"`
				} `json:"identificationModule"`
				ArmsInterventionsModule struct {
					Interventions []struct {
						Type  string   `json:"type"`
						Name  string   `json:"name"`
						Other []string `json:"otherNames"`
					} `json:"interventions"`
				} `json:"armsInterventionsModule"`
			} `json:"protocolSection"`
		}
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			return nil, fmt.Errorf("line %d: not a study: %v", line, err)
		}
		t.studies++
		id := st.ProtocolSection.IdentificationModule.NCTID
		for _, in := range st.ProtocolSection.ArmsInterventionsModule.Interventions {
			for _, name := range append([]string{in.Name}, in.Other...) {
				key := strings.ToLower(strings.TrimSpace(name))
				if key == "" {
					continue
				}
				e := t.byName[key]
				if e == nil {
					e = &entry{name: strings.TrimSpace(name), types: map[string]int{}}
					t.byName[key] = e
				}
				e.types[in.Type]++
				if !slices.Contains(e.studies, id) {
					e.studies = append(e.studies, id)
				}
			}
		}
	}
	return t, sc.Err()
}

// lookupArgs are lookup_intervention's arguments.
type lookupArgs struct {
	Name string `json:"name" jsonschema:"the intervention's name as the record gives it"`
}

// lookup answers one name: an exact match (case-insensitive), else up to five names that contain
// it.
func (t *table) lookup(name string) (string, bool) {
	key := strings.ToLower(strings.TrimSpace(name))
	if key == "" {
		return "Give the intervention's name.", false
	}
	if e, ok := t.byName[key]; ok {
		return describe(e), true
	}
	var near []string
	for k := range t.byName {
		if strings.Contains(k, key) || strings.Contains(key, k) && len(k) >= 4 {
			near = append(near, k)
		}
	}
	slices.Sort(near)
	if len(near) == 0 {
		return fmt.Sprintf("No study in the table (%d studies) lists an intervention named %q.", t.studies, name), false
	}
	if len(near) > 5 {
		near = near[:5]
	}
	parts := make([]string, len(near))
	for i, k := range near {
		parts[i] = describe(t.byName[k])
	}
	return fmt.Sprintf("No intervention is named exactly %q; similar names:\n%s", name, strings.Join(parts, "\n")), true
}

func describe(e *entry) string {
	types := make([]string, 0, len(e.types))
	for ty := range e.types {
		types = append(types, ty)
	}
	slices.SortFunc(types, func(a, b string) int { return e.types[b] - e.types[a] })
	counts := make([]string, len(types))
	for i, ty := range types {
		counts[i] = fmt.Sprintf("%s (%d)", ty, e.types[ty])
	}
	ex := e.studies
	if len(ex) > 3 {
		ex = ex[:3]
	}
	return fmt.Sprintf("%q is listed by %d studies as %s; for example %s.", e.name, len(e.studies), strings.Join(counts, ", "), strings.Join(ex, ", "))
}

// serve serves the table over t until the client goes or ctx ends.
func serve(ctx context.Context, tb *table, tr mcp.Transport) error {
	s := mcp.NewServer(&mcp.Implementation{Name: "interventions-mcp", Version: buildinfo.Release}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "lookup_intervention",
		Description: "How registered studies classify an intervention: its intervention types (DRUG, BIOLOGICAL, DEVICE, ...) and how many studies list it."},
		func(_ context.Context, _ *mcp.CallToolRequest, in lookupArgs) (*mcp.CallToolResult, any, error) {
			text, found := tb.lookup(in.Name)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, IsError: !found && strings.TrimSpace(in.Name) == ""}, nil, nil
		})
	return s.Run(ctx, tr)
}
