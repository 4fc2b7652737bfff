// Package fakereg is a fake of the ClinicalTrials.gov API v2 for tests and the demo: it pages a
// set of studies the way the registry does (pageSize, a nextPageToken tied to its query,
// countTotal, the LastUpdatePostDate range filter, query.term, query.cond and
// filter.overallStatus), serves /api/v2/version and one study at /api/v2/studies/{nctId}, and
// fails on purpose (429 with Retry-After, 500, bodies cut off midway). NewMonth edits and adds
// studies, as a month of the registry does.
package fakereg

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config sets the faults, shares of the page requests in [0,1] drawn from Seed.
type Config struct {
	Seed       uint64
	Rate429    float64
	Rate500    float64
	RateCut    float64
	RetryAfter int // seconds sent with a 429 (0: none)
	// PageDelay is slept before each page is answered (a slow registry, for kill tests).
	PageDelay time.Duration
}

// Stats counts what the server did.
type Stats struct {
	Requests int
	Pages    int // pages answered whole
	// Served counts each study sent in a whole page, by NCT ID.
	Served map[string]int
	Faults map[string]int
}

type study struct {
	id, date, status string
	conds            []string
	raw              []byte
}

// Server is the fake. It is an http.Handler safe for concurrent use.
type Server struct {
	cfg   Config
	mu    sync.Mutex
	rng   *rand.Rand
	items []*study
	byID  map[string]*study
	stamp string
	stats Stats
}

// New serves the studies in jsonl (one study JSON a line), with data timestamp stamp.
func New(cfg Config, jsonl []byte, stamp string) (*Server, error) {
	s := &Server{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)), byID: map[string]*study{}, stamp: stamp,
		stats: Stats{Served: map[string]int{}, Faults: map[string]int{}}}
	for i, line := range bytes.Split(jsonl, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		st, err := parse(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		s.put(st)
	}
	return s, nil
}

func parse(raw []byte) (*study, error) {
	var v struct {
		ProtocolSection struct {
			IdentificationModule struct {
				NCTID string `json:"nctId"`
			} `json:"identificationModule"`
			StatusModule struct {
				Overall    string `json:"overallStatus"`
				LastUpdate struct {
					Date string `json:"date"`
				} `json:"lastUpdatePostDateStruct"`
			} `json:"statusModule"`
			ConditionsModule struct {
				Conditions []string `json:"conditions"`
			} `json:"conditionsModule"`
		} `json:"protocolSection"`
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		return nil, err
	}
	p := v.ProtocolSection
	if p.IdentificationModule.NCTID == "" {
		return nil, fmt.Errorf("a study without protocolSection.identificationModule.nctId")
	}
	return &study{id: p.IdentificationModule.NCTID, date: p.StatusModule.LastUpdate.Date, status: p.StatusModule.Overall,
		conds: p.ConditionsModule.Conditions, raw: buf.Bytes()}, nil
}

func (s *Server) put(st *study) {
	if old, ok := s.byID[st.id]; ok {
		*old = *st
		return
	}
	s.items = append(s.items, st)
	s.byID[st.id] = st
}

// Study returns a study's JSON as the server holds it (compact), or nil.
func (s *Server) Study(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.byID[id]; ok {
		return slices.Clone(st.raw)
	}
	return nil
}

// IDs lists the studies' IDs in the server's order.
func (s *Server) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.items))
	for i, st := range s.items {
		out[i] = st.id
	}
	return out
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Requests: s.stats.Requests, Pages: s.stats.Pages, Served: map[string]int{}, Faults: map[string]int{}}
	for k, v := range s.stats.Served {
		out.Served[k] = v
	}
	for k, v := range s.stats.Faults {
		out.Faults[k] = v
	}
	return out
}

// ResetStats zeroes the counters (a new month's sync is then counted alone).
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = Stats{Served: map[string]int{}, Faults: map[string]int{}}
	s.mu.Unlock()
}

// NewMonth edits the first edit studies (their brief title gains " (amended DATE)") and adds
// add new ones (copies of the last studies with new IDs), all with LastUpdatePostDate date, and
// sets the data timestamp to date. It returns the IDs edited and added.
func (s *Server) NewMonth(edit, add int, date string) (edited, added []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < edit && i < len(s.items); i++ {
		st := s.items[i*len(s.items)/max(edit, 1)]
		raw := retitle(st.raw, " (amended "+date+")")
		raw = redate(raw, date)
		ns, err := parse(raw)
		if err != nil {
			continue
		}
		*st = *ns
		edited = append(edited, st.id)
	}
	n := len(s.items)
	for i := 0; i < add && n > 0; i++ {
		src := s.items[n-1-i%n]
		id := fmt.Sprintf("NCT9%07d", len(s.items))
		raw := bytes.Replace(src.raw, []byte(`"nctId":"`+src.id+`"`), []byte(`"nctId":"`+id+`"`), 1)
		ns, err := parse(redate(raw, date))
		if err != nil {
			continue
		}
		s.put(ns)
		added = append(added, id)
	}
	s.stamp = date + "T09:00:00"
	return edited, added
}

var (
	briefTitle = regexp.MustCompile(`("briefTitle":")((?:[^"\\]|\\.)*)(")`)
	lastUpdate = regexp.MustCompile(`("lastUpdatePostDateStruct":\{"date":")([^"]*)(")`)
)

func retitle(raw []byte, suffix string) []byte {
	return briefTitle.ReplaceAll(raw, []byte("${1}${2}"+suffix+"${3}"))
}

func redate(raw []byte, date string) []byte {
	return lastUpdate.ReplaceAll(raw, []byte("${1}"+date+"${3}"))
}

// ServeHTTP serves /api/v2/studies, /api/v2/studies/{id} and /api/v2/version.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.mu.Unlock()
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/api/v2/version":
		s.mu.Lock()
		stamp := s.stamp
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"apiVersion": "2.0.5-fake", "dataTimestamp": stamp})
	case path == "/api/v2/studies":
		s.page(w, r.URL.Query())
	case path == "/fake/new-month" && r.Method == http.MethodPost:
		// The demo's and the docs' way to let a month pass: POST /fake/new-month?edit=10&add=5&date=2026-12-01.
		q := r.URL.Query()
		edit, _ := strconv.Atoi(q.Get("edit"))
		add, _ := strconv.Atoi(q.Get("add"))
		date := q.Get("date")
		if date == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "date=YYYY-MM-DD is required"})
			return
		}
		edited, added := s.NewMonth(edit, add, date)
		writeJSON(w, http.StatusOK, map[string]any{"edited": edited, "added": added})
	case strings.HasPrefix(path, "/api/v2/studies/"):
		if raw := s.Study(strings.TrimPrefix(path, "/api/v2/studies/")); raw != nil {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(raw)
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "study not found"})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "no such endpoint"})
	}
}

var sinceFilter = regexp.MustCompile(`^AREA\[LastUpdatePostDate\]RANGE\[([0-9-]+),\s*MAX\]$`)

func (s *Server) page(w http.ResponseWriter, q url.Values) {
	if s.cfg.PageDelay > 0 {
		time.Sleep(s.cfg.PageDelay)
	}
	size := 10
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "pageSize must be 0 to 1000"})
			return
		}
		if n > 0 {
			size = n
		}
	}
	since := ""
	if adv := q.Get("filter.advanced"); adv != "" {
		m := sinceFilter.FindStringSubmatch(adv)
		if m == nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "this fake understands only AREA[LastUpdatePostDate]RANGE[date,MAX]"})
			return
		}
		since = m[1]
	}
	term, cond := strings.ToLower(q.Get("query.term")), strings.ToLower(q.Get("query.cond"))
	var statuses []string
	if v := q.Get("filter.overallStatus"); v != "" {
		statuses = strings.Split(v, ",")
	}
	// The token carries the query it belongs to and where the next page starts.
	sel := url.Values{}
	for k, v := range q {
		if k != "pageToken" && k != "countTotal" {
			sel[k] = v
		}
	}
	qh := sha256.Sum256([]byte(sel.Encode()))
	qkey := hex.EncodeToString(qh[:6])
	start := 0
	if tok := q.Get("pageToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		k, off, ok := strings.Cut(string(b), ":")
		n, aerr := strconv.Atoi(off)
		if err != nil || !ok || k != qkey || aerr != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "pageToken is not of this query"})
			return
		}
		start = n
	}
	s.mu.Lock()
	var match []*study
	for _, st := range s.items {
		if since != "" && st.date < since {
			continue
		}
		if term != "" && !strings.Contains(strings.ToLower(string(st.raw)), term) {
			continue
		}
		if cond != "" && !slices.ContainsFunc(st.conds, func(c string) bool { return strings.Contains(strings.ToLower(c), cond) }) {
			continue
		}
		if len(statuses) > 0 && !slices.Contains(statuses, st.status) {
			continue
		}
		match = append(match, st)
	}
	if strings.HasPrefix(q.Get("sort"), "LastUpdatePostDate") {
		slices.SortStableFunc(match, func(a, b *study) int { return strings.Compare(a.date, b.date) })
	}
	u := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case u < s.cfg.Rate429:
		s.fault("429")
		if s.cfg.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(s.cfg.RetryAfter))
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "too many requests"})
		return
	case u < s.cfg.Rate429+s.cfg.Rate500:
		s.fault("500")
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "internal error"})
		return
	}
	end := min(start+size, len(match))
	start = min(start, end)
	var b bytes.Buffer
	b.WriteString(`{"studies":[`)
	for i, st := range match[start:end] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(st.raw)
	}
	b.WriteString("]")
	if end < len(match) {
		tok := base64.RawURLEncoding.EncodeToString([]byte(qkey + ":" + strconv.Itoa(end)))
		fmt.Fprintf(&b, `,"nextPageToken":%q`, tok)
	}
	if q.Get("countTotal") == "true" {
		fmt.Fprintf(&b, `,"totalCount":%d`, len(match))
	}
	b.WriteString("}")
	body := b.Bytes()
	w.Header().Set("Content-Type", "application/json")
	if u < s.cfg.Rate429+s.cfg.Rate500+s.cfg.RateCut {
		s.fault("cut")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
			}
		}
		return
	}
	_, _ = w.Write(body)
	s.mu.Lock()
	s.stats.Pages++
	for _, st := range match[start:end] {
		s.stats.Served[st.id]++
	}
	s.mu.Unlock()
}

func (s *Server) fault(kind string) {
	s.mu.Lock()
	s.stats.Faults[kind]++
	s.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
