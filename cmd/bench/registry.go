package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/fakereg"
	"github.com/trialcat/trialcat/internal/registry"
)

// registryResult is the registry scenario's outcome.
type registryResult struct {
	Fetch []fetchRun `json:"fetch"`
	Sync  syncRun    `json:"sync"`
}

type fetchRun struct {
	Studies       int     `json:"studies"`
	RPM           int     `json:"rpm"`
	PageSize      int     `json:"page_size"`
	WallS         float64 `json:"wall_s"`
	StudiesPerS   float64 `json:"studies_per_s"`
	CoordPeakRSSK int64   `json:"peak_rss_kb"`
}

type syncRun struct {
	Mirror      int     `json:"mirror_studies"`
	MirrorMB    float64 `json:"mirror_mb"`
	Updated     int     `json:"updated"`
	WallS       float64 `json:"wall_s"`
	PeakRSSKB   int64   `json:"peak_rss_kb"`
	PeakAnonKB  int64   `json:"peak_anon_kb"`
	StudiesOut  int64   `json:"studies_after"`
	Description string  `json:"how"`
}

// synthStudy is a small synthetic study (about 600 bytes) with ID n and last update date.
func synthStudy(n int, date, title string) []byte {
	b, _ := json.Marshal(map[string]any{"protocolSection": map[string]any{
		"identificationModule": map[string]any{"nctId": fmt.Sprintf("NCT%08d", n), "briefTitle": title},
		"statusModule":         map[string]any{"overallStatus": "COMPLETED", "lastUpdatePostDateStruct": map[string]any{"date": date}},
		"conditionsModule":     map[string]any{"conditions": []string{"Condition " + fmt.Sprint(n%97)}},
		"descriptionModule":    map[string]any{"briefSummary": strings.Repeat("A synthetic study for the sync benchmark. ", 8)},
	}})
	return b
}

// serveRegistry serves a fake registry of the studies in jsonl on a loopback port.
func serveRegistry(jsonl []byte, stamp string) (string, func(), error) {
	srv, err := fakereg.New(fakereg.Config{}, jsonl, stamp)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/api/v2", func() { _ = hs.Close() }, nil
}

// registryBench measures fetch throughput at a given request rate, and a sync's time and peak
// memory over a synthetic mirror.
func (b *bench) registryBench(ctx context.Context) (any, error) {
	nFetch, nMirror, nUpdated := 20_000, 500_000, 5_000
	if b.cfg.Quick {
		nFetch, nMirror, nUpdated = 2_000, 20_000, 500
	}
	res := &registryResult{}
	var fetchData []byte
	for i := 0; i < nFetch; i++ {
		fetchData = append(append(fetchData, synthStudy(i, "2026-10-01", "Study")...), '\n')
	}
	url, stop, err := serveRegistry(fetchData, "2026-11-01T09:00:00")
	if err != nil {
		return nil, err
	}
	for _, run := range []struct{ studies, rpm, page int }{{nFetch, 1_000_000, 1000}, {5000, registry.DefaultRPM, 1000}} {
		out := filepath.Join(b.work, fmt.Sprintf("fetch-%d-%d.jsonl", run.studies, run.rpm))
		_ = os.Remove(out)
		_ = os.Remove(out + ".fetch.json")
		p, err := runProc(ctx, filepath.Join(b.bin, "coordinator"), []string{"fetch", "--out", out, "--registry-url", url,
			"--fetch-rpm", itoa(run.rpm), "--page-size", itoa(run.page), "--max", itoa(run.studies)}, env(), 10*time.Minute)
		if err != nil || p.ExitCode != 0 {
			stop()
			return nil, fmt.Errorf("fetch: %v\n%s", err, tail(p, 10))
		}
		res.Fetch = append(res.Fetch, fetchRun{Studies: run.studies, RPM: run.rpm, PageSize: run.page, WallS: p.WallS,
			StudiesPerS: float64(run.studies) / p.WallS, CoordPeakRSSK: p.PeakRSSKB})
	}
	stop()

	// The mirror: nMirror synthetic studies, as a first sync would have written them.
	mirror := filepath.Join(b.work, "mirror")
	_ = os.RemoveAll(mirror)
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(mirror, registry.MirrorStudies))
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < nMirror; i++ {
		w.Write(synthStudy(i, "2026-10-01", "Study"))
		w.WriteByte('\n')
	}
	w.Flush()
	st, _ := f.Stat()
	f.Close()
	q := registry.Query{}
	state := registry.SyncState{Query: q, QueryKey: q.SelectionKey(), DataTimestamp: "2026-11-01T09:00:00", Studies: int64(nMirror), SyncedAt: time.Now().UTC(), Syncs: 1}
	sb, _ := json.Marshal(state)
	if err := os.WriteFile(filepath.Join(mirror, registry.MirrorState), sb, 0o644); err != nil {
		return nil, err
	}
	// The registry a month later holds the updated studies (spread over the mirror) and new ones;
	// the since filter selects exactly those.
	var delta []byte
	for k := 0; k < nUpdated; k++ {
		n := k * (nMirror / nUpdated)
		if k%5 == 4 {
			n = nMirror + k // a fifth are new
		}
		delta = append(append(delta, synthStudy(n, "2026-12-01", "Study (amended)")...), '\n')
	}
	url, stop, err = serveRegistry(delta, "2026-12-01T09:00:00")
	if err != nil {
		return nil, err
	}
	defer stop()
	p, err := runProc(ctx, filepath.Join(b.bin, "coordinator"), []string{"sync", "--mirror", mirror, "--registry-url", url, "--fetch-rpm", "1000000"}, env(), 20*time.Minute)
	if err != nil || p.ExitCode != 0 {
		return nil, fmt.Errorf("sync: %v\n%s", err, tail(p, 10))
	}
	var after registry.SyncState
	if sb, err := os.ReadFile(filepath.Join(mirror, registry.MirrorState)); err == nil {
		_ = json.Unmarshal(sb, &after)
	}
	res.Sync = syncRun{Mirror: nMirror, MirrorMB: float64(st.Size()) / 1e6, Updated: nUpdated, WallS: p.WallS, PeakRSSKB: p.PeakRSSKB,
		PeakAnonKB: p.PeakAnonKB, StudiesOut: after.Studies,
		Description: fmt.Sprintf("%d synthetic studies of about %d bytes (IDs NCT00000000 on, one condition, a 340-character summary), written as a first sync leaves a mirror; the fake registry holds the %d updated a month later (4 in 5 edited, 1 in 5 new)", nMirror, st.Size()/int64(nMirror), nUpdated)}
	b.registryTables(res)
	return res, nil
}

func (b *bench) registryTables(res *registryResult) {
	fmt.Fprintf(b.out, "## Registry: fetch throughput and a sync over a large mirror\n\n")
	var rows [][]string
	for _, f := range res.Fetch {
		rows = append(rows, []string{itoa(f.Studies), itoa(f.PageSize), itoa(f.RPM), f2(f.WallS), f1(f.StudiesPerS), mb(f.CoordPeakRSSK)})
	}
	table(b.out, []string{"studies", "page size", "--fetch-rpm", "wall s", "studies/s", "peak RSS MB"}, rows)
	s := res.Sync
	fmt.Fprintf(b.out, "\nSync of a %d-study mirror (%.0f MB) with %d updated: %.2f s, %d studies after, coordinator peak RSS %s MB (%s MB private). %s.\n\n",
		s.Mirror, s.MirrorMB, s.Updated, s.WallS, s.StudiesOut, mb(s.PeakRSSKB), mb(s.PeakAnonKB), s.Description)
}
