package registry

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/trialcat/trialcat/internal/fakereg"
)

// A first sync fetches everything; after a month of edits and additions a second fetches only
// what was updated and leaves the mirror with the new content, the new studies and every other;
// a sync killed midway leaves the old mirror intact, and the next one completes.
func TestSyncFetchesOnlyWhatChanged(t *testing.T) {
	srv, c := startRegistry(t, fakereg.Config{})
	dir := filepath.Join(t.TempDir(), "mirror")
	res, err := Sync(context.Background(), c, SyncOptions{Mirror: dir, Query: Query{PageSize: 25}})
	if err != nil || !res.First || res.Studies != 100 {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	studies := filepath.Join(dir, MirrorStudies)
	before, _ := os.ReadFile(studies)

	edited, added := srv.NewMonth(10, 5, "2026-12-01")
	srv.ResetStats()
	// Killed mid-sync: after its first page of the delta.
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Sync(ctx, c, SyncOptions{Mirror: dir, Query: Query{PageSize: 4}, Progress: func(int64, int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped sync: %v", err)
	}
	if now, _ := os.ReadFile(studies); string(now) != string(before) {
		t.Fatal("a stopped sync changed the mirror")
	}
	res, err = Sync(context.Background(), c, SyncOptions{Mirror: dir, Query: Query{PageSize: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if res.New != 5 || res.Changed != 10 || res.Studies != 105 {
		t.Errorf("second sync: %+v", res)
	}
	served := srv.Stats().Served
	updated := map[string]bool{}
	for _, id := range append(edited, added...) {
		updated[id] = true
	}
	for _, id := range srv.IDs() {
		if !updated[id] && served[id] > 0 {
			t.Errorf("%s was not updated but fetched again %d times", id, served[id])
		}
		if updated[id] && served[id] == 0 {
			t.Errorf("%s was updated but not fetched", id)
		}
	}
	got := map[string]string{}
	for _, l := range lines(t, studies) {
		got[StudyID(l)] = string(l)
	}
	for _, id := range srv.IDs() {
		if got[id] != string(srv.Study(id)) {
			t.Errorf("%s: the mirror's study is not the server's", id)
		}
	}
	if len(got) != 105 {
		t.Errorf("the mirror holds %d studies, want 105", len(got))
	}
	kinds := map[string]int{}
	for _, l := range lines(t, filepath.Join(dir, MirrorChanges)) {
		var ch Change
		if err := json.Unmarshal(l, &ch); err != nil {
			t.Fatal(err)
		}
		kinds[ch.Change]++
		if ch.LastUpdate != "2026-12-01" {
			t.Errorf("%s: last update %q", ch.ID, ch.LastUpdate)
		}
	}
	if kinds[ChangeNew] != 5 || kinds[ChangeChanged] != 10 {
		t.Errorf("changes.jsonl: %v", kinds)
	}
	// Another query over this mirror is refused.
	if _, err := Sync(context.Background(), c, SyncOptions{Mirror: dir, Query: Query{Cond: "asthma"}}); !errors.Is(err, ErrOtherQuery) {
		t.Errorf("another query: %v", err)
	}
}
