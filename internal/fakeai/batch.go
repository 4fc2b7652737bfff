package fakeai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/wait"
)

// BatchConfig is the fake's Batch API (/v1/files and /v1/batches): the status lifecycle
// validating → in_progress → finalizing → completed, each step lasting its duration on the
// server's clock (a test scales a day down to milliseconds), and the faults of each step.
type BatchConfig struct {
	Validating, InProgress, Finalizing time.Duration
	// FailValidation fails every batch in validation, with an error per batch.
	FailValidation bool
	// ExpireAfterShare, when above 0, expires every batch at the end of in_progress with only
	// this share of its requests done; the rest are batch_expired lines in the error file.
	ExpireAfterShare float64
	// NoOutputFile completes batches without an output or error file.
	NoOutputFile bool
	// MalformedLine puts a line that is not JSON first in every output file.
	MalformedLine bool
	// UnknownCustomID adds an output line for a custom_id the input did not have;
	// StrayLines adds that many more (a lying, endless-looking file).
	UnknownCustomID bool
	StrayLines      int
	// DuplicateCustomID writes every answer line twice (the copy answered anew): a client must
	// keep one answer per request.
	DuplicateCustomID bool
	// MissingCustomIDs leaves the first N answers out of both files, though the batch says
	// completed: a client must keep those requests to do.
	MissingCustomIDs int
	// ExpiresIn is the window a batch's expires_at states; 0 means 24h. A batch may go on
	// running past it (InProgress longer): a server that does not keep its own window.
	ExpiresIn time.Duration
	// DropCreateAnswers drops the connection after creating each of the first N batches: the
	// batch exists, the client never hears of it (a crash or timeout at that moment).
	DropCreateAnswers int
	// StallCreate holds each create request this long before acting on it; a client that
	// goes away meanwhile creates nothing.
	StallCreate time.Duration
	// MaxFileBytes and MaxRequests, when above 0, refuse larger input files (the API's
	// limits are 200 MB and 50,000 requests).
	MaxFileBytes int64
	MaxRequests  int
}

// BatchStats counts the Batch API's work.
type BatchStats struct {
	Uploads int `json:"uploads"`
	Created int `json:"created"`
	// CreatedFor counts batches created per input file ID: more than one is a double
	// submission.
	CreatedFor map[string]int `json:"created_for"`
	Cancelled  int            `json:"cancelled"`
}

type file struct {
	id, purpose, name string
	data              []byte
	created           int64
}

type fakeBatch struct {
	id, input, endpoint, window string
	metadata                    map[string]string
	created, expires            time.Time
	cancelledAt                 time.Time
	status                      string
	output, errorFile           string
	total, completed, failed    int
	errs                        []map[string]any
	done                        bool // the lines were answered and the files written
	stamps                      map[string]int64
}

// batchAPI is the Batch API's state; a Server holds one.
type batchAPI struct {
	mu      sync.Mutex
	cfg     BatchConfig
	files   map[string]*file
	batches map[string]*fakeBatch
	order   []string // batch IDs, oldest first
	seq     int
	stats   BatchStats
}

func (s *Server) batchState() *batchAPI {
	s.batchOnce.Do(func() {
		s.batch = &batchAPI{cfg: s.cfg.Batch, files: map[string]*file{}, batches: map[string]*fakeBatch{}, stats: BatchStats{CreatedFor: map[string]int{}}}
	})
	return s.batch
}

// SetBatchConfig changes the Batch API's timing and faults from now on (a test that lets a
// stalled step go, or ends a long batch).
func (s *Server) SetBatchConfig(c BatchConfig) {
	b := s.batchState()
	b.mu.Lock()
	b.cfg = c
	b.mu.Unlock()
}

func (b *batchAPI) config() BatchConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// BatchStats returns a copy of the Batch API's counters.
func (s *Server) BatchStats() BatchStats {
	b := s.batchState()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.stats
	out.CreatedFor = map[string]int{}
	for k, v := range b.stats.CreatedFor {
		out.CreatedFor[k] = v
	}
	return out
}

func (b *batchAPI) newID(prefix string) string {
	b.seq++
	return fmt.Sprintf("%s-fake%06d", prefix, b.seq)
}

// serveBatchAPI answers the Files and Batches endpoints; it reports false for other paths.
func (s *Server) serveBatchAPI(w http.ResponseWriter, r *http.Request) bool {
	path := strings.TrimPrefix(r.URL.Path, "/v1")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 0 || (parts[0] != "files" && parts[0] != "batches") {
		return false
	}
	if !s.authorized(w, r) {
		return true
	}
	b := s.batchState()
	switch {
	case parts[0] == "files" && len(parts) == 1 && r.Method == http.MethodPost:
		s.upload(w, r, b)
	case parts[0] == "files" && len(parts) == 2 && r.Method == http.MethodGet:
		if f := b.file(w, parts[1]); f != nil {
			writeJSON(w, http.StatusOK, fileJSON(f))
		}
	case parts[0] == "files" && len(parts) == 3 && parts[2] == "content" && r.Method == http.MethodGet:
		f := b.file(w, parts[1])
		if f == nil {
			return true
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(f.data)
	case parts[0] == "batches" && len(parts) == 1 && r.Method == http.MethodPost:
		s.createBatch(w, r, b)
	case parts[0] == "batches" && len(parts) == 1 && r.Method == http.MethodGet:
		s.listBatches(w, r, b)
	case parts[0] == "batches" && len(parts) == 2 && r.Method == http.MethodGet:
		s.getBatch(w, parts[1], false)
	case parts[0] == "batches" && len(parts) == 3 && parts[2] == "cancel" && r.Method == http.MethodPost:
		s.getBatch(w, parts[1], true)
	default:
		writeError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
	}
	return true
}

// file looks a file up, answering 404 when there is none.
func (b *batchAPI) file(w http.ResponseWriter, id string) *file {
	b.mu.Lock()
	f := b.files[id]
	b.mu.Unlock()
	if f == nil {
		writeError(w, http.StatusNotFound, "No such File object: "+id, "invalid_request_error", "id", "")
	}
	return f
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.cfg.Unauthorized || (s.cfg.APIKey != "" && key != s.cfg.APIKey) {
		s.count(Kind401)
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided.", "invalid_request_error", "", "invalid_api_key")
		return false
	}
	return true
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, b *batchAPI) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		writeError(w, http.StatusBadRequest, "fakeai: a multipart form with purpose and file is required: "+err.Error(), "invalid_request_error", "file", "")
		return
	}
	purpose := r.FormValue("purpose")
	fh, hdr, err := r.FormFile("file")
	if err != nil || purpose == "" {
		writeError(w, http.StatusBadRequest, "fakeai: purpose and file are required", "invalid_request_error", "file", "")
		return
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return
	}
	cfg := b.config()
	if cfg.MaxFileBytes > 0 && int64(len(data)) > cfg.MaxFileBytes {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("File is too large: %d bytes, the limit is %d", len(data), cfg.MaxFileBytes), "invalid_request_error", "file", "")
		return
	}
	b.mu.Lock()
	f := &file{id: b.newID("file"), purpose: purpose, name: hdr.Filename, data: data, created: s.now().Unix()}
	b.files[f.id] = f
	b.stats.Uploads++
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, fileJSON(f))
}

func fileJSON(f *file) map[string]any {
	return map[string]any{"id": f.id, "object": "file", "bytes": len(f.data), "created_at": f.created,
		"filename": f.name, "purpose": f.purpose, "status": "processed"}
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, b *batchAPI) {
	var p struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "fakeai: bad batch body: "+err.Error(), "invalid_request_error", "", "")
		return
	}
	if wait.Sleep(r.Context(), b.config().StallCreate) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.files[p.InputFileID]
	switch {
	case f == nil:
		writeError(w, http.StatusBadRequest, "No such File object: "+p.InputFileID, "invalid_request_error", "input_file_id", "")
		return
	case f.purpose != "batch":
		writeError(w, http.StatusBadRequest, "The input file must have purpose batch", "invalid_request_error", "input_file_id", "")
		return
	case p.Endpoint != "/v1/chat/completions" || p.CompletionWindow != "24h":
		writeError(w, http.StatusBadRequest, "fakeai: endpoint /v1/chat/completions and completion_window 24h only", "invalid_request_error", "endpoint", "")
		return
	}
	fb := &fakeBatch{id: b.newID("batch"), input: p.InputFileID, endpoint: p.Endpoint, window: p.CompletionWindow,
		metadata: p.Metadata, created: s.now(), status: "validating", stamps: map[string]int64{}}
	fb.expires = fb.created.Add(24 * time.Hour)
	if b.cfg.ExpiresIn > 0 {
		fb.expires = fb.created.Add(b.cfg.ExpiresIn)
	}
	fb.total = bytes.Count(f.data, []byte("\n"))
	if max := b.cfg.MaxRequests; max > 0 && fb.total > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("The input file has %d requests; the limit is %d", fb.total, max), "invalid_request_error", "input_file_id", "")
		return
	}
	b.batches[fb.id] = fb
	b.order = append(b.order, fb.id)
	b.stats.Created++
	b.stats.CreatedFor[p.InputFileID]++
	s.advance(b, fb)
	if b.stats.Created <= b.cfg.DropCreateAnswers {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, batchJSON(fb))
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request, b *batchAPI) {
	limit := 20
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 100 {
		limit = n
	}
	after := r.URL.Query().Get("after")
	b.mu.Lock()
	defer b.mu.Unlock()
	// Newest first, as the API lists them.
	ids := make([]string, len(b.order))
	for i, id := range b.order {
		ids[len(ids)-1-i] = id
	}
	start := 0
	if after != "" {
		for i, id := range ids {
			if id == after {
				start = i + 1
			}
		}
	}
	var data []any
	end := min(len(ids), start+limit)
	for _, id := range ids[start:end] {
		fb := b.batches[id]
		s.advance(b, fb)
		data = append(data, batchJSON(fb))
	}
	if data == nil {
		data = []any{}
	}
	resp := map[string]any{"object": "list", "data": data, "has_more": end < len(ids)}
	if len(data) > 0 {
		resp["first_id"], resp["last_id"] = ids[start], ids[end-1]
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getBatch(w http.ResponseWriter, id string, cancel bool) {
	b := s.batchState()
	b.mu.Lock()
	defer b.mu.Unlock()
	fb := b.batches[id]
	if fb == nil {
		writeError(w, http.StatusNotFound, "No such Batch object: "+id, "invalid_request_error", "id", "")
		return
	}
	s.advance(b, fb)
	if cancel {
		switch fb.status {
		case "validating", "in_progress", "finalizing":
			fb.status, fb.cancelledAt = "cancelling", s.now()
			fb.stamps["cancelling_at"] = s.now().Unix()
			b.stats.Cancelled++
		case "cancelling", "cancelled":
		default:
			writeError(w, http.StatusConflict, "Cannot cancel a batch with status "+fb.status, "invalid_request_error", "", "")
			return
		}
	}
	writeJSON(w, http.StatusOK, batchJSON(fb))
}

// advance moves a batch along its lifecycle by the server's clock, answering its requests when
// it leaves in_progress. Called with b.mu held.
func (s *Server) advance(b *batchAPI, fb *fakeBatch) {
	cfg := b.cfg
	now := s.now()
	since := now.Sub(fb.created)
	stamp := func(k string, at time.Duration) {
		if _, ok := fb.stamps[k]; !ok {
			fb.stamps[k] = fb.created.Add(at).Unix()
		}
	}
	switch fb.status {
	case "cancelling":
		if now.Sub(fb.cancelledAt) >= cfg.Finalizing {
			fb.status = "cancelled"
			stamp("cancelled_at", since)
		}
		return
	case "validating":
		if since < cfg.Validating {
			return
		}
		if cfg.FailValidation {
			fb.status = "failed"
			fb.errs = []map[string]any{{"code": "invalid_request", "message": "fakeai: validation refused the input file", "line": 1, "param": nil}}
			stamp("failed_at", cfg.Validating)
			return
		}
		fb.status = "in_progress"
		stamp("in_progress_at", cfg.Validating)
		fallthrough
	case "in_progress":
		if since < cfg.Validating+cfg.InProgress {
			return
		}
		s.answerBatch(b, fb)
		if cfg.ExpireAfterShare > 0 {
			fb.status = "expired"
			stamp("expired_at", cfg.Validating+cfg.InProgress)
			return
		}
		fb.status = "finalizing"
		stamp("finalizing_at", cfg.Validating+cfg.InProgress)
		fallthrough
	case "finalizing":
		if since < cfg.Validating+cfg.InProgress+cfg.Finalizing {
			return
		}
		fb.status = "completed"
		stamp("completed_at", cfg.Validating+cfg.InProgress+cfg.Finalizing)
	}
}

// answerBatch answers every request line of the batch's input through the chat endpoint (so the
// request faults apply to lines too) and writes the output and error files.
func (s *Server) answerBatch(b *batchAPI, fb *fakeBatch) {
	if fb.done {
		return
	}
	fb.done = true
	cfg := b.cfg
	in := b.files[fb.input]
	var out, errOut bytes.Buffer
	if cfg.MalformedLine {
		out.WriteString("{\"id\": \"batch_req_broken\", \"custom_id\": \n")
	}
	lines := bytes.Split(bytes.TrimRight(in.data, "\n"), []byte("\n"))
	keep := len(lines)
	if cfg.ExpireAfterShare > 0 {
		keep = int(float64(len(lines)) * cfg.ExpireAfterShare)
	}
	for i, line := range lines {
		var req struct {
			CustomID string          `json:"custom_id"`
			Method   string          `json:"method"`
			URL      string          `json:"url"`
			Body     json.RawMessage `json:"body"`
		}
		reqID := fmt.Sprintf("batch_req_%s_%d", fb.id, i)
		if err := json.Unmarshal(line, &req); err != nil || req.CustomID == "" {
			fb.failed++
			writeLine(&errOut, map[string]any{"id": reqID, "custom_id": req.CustomID, "response": nil,
				"error": map[string]any{"code": "invalid_json", "message": "fakeai: the line is not a request"}})
			continue
		}
		if i >= keep {
			fb.failed++
			writeLine(&errOut, map[string]any{"id": reqID, "custom_id": req.CustomID, "response": nil,
				"error": map[string]any{"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
			continue
		}
		status, body := s.answerLine(req.Body)
		entry := map[string]any{"id": reqID, "custom_id": req.CustomID,
			"response": map[string]any{"status_code": status, "request_id": "req_" + reqID, "body": body}, "error": nil}
		if status == http.StatusOK && i < cfg.MissingCustomIDs {
			fb.completed++ // counted done, but in neither file
			continue
		}
		if status == http.StatusOK {
			fb.completed++
			writeLine(&out, entry)
			if cfg.DuplicateCustomID {
				again, _ := s.answerLine(req.Body)
				writeLine(&out, map[string]any{"id": reqID + "_again", "custom_id": req.CustomID,
					"response": map[string]any{"status_code": status, "request_id": "req_" + reqID + "_again", "body": again}, "error": nil})
			}
		} else {
			fb.failed++
			writeLine(&errOut, entry)
		}
	}
	if cfg.UnknownCustomID {
		writeLine(&out, map[string]any{"id": "batch_req_stray", "custom_id": "NOT-IN-THE-INPUT",
			"response": map[string]any{"status_code": 200, "body": map[string]any{}}, "error": nil})
	}
	for i := range cfg.StrayLines {
		writeLine(&out, map[string]any{"id": fmt.Sprintf("batch_req_stray_%d", i), "custom_id": fmt.Sprintf("STRAY-%d", i),
			"response": map[string]any{"status_code": 200, "body": map[string]any{}}, "error": nil})
	}
	if cfg.NoOutputFile {
		return
	}
	if out.Len() > 0 {
		f := &file{id: b.newID("file"), purpose: "batch_output", name: "batch_output.jsonl", data: out.Bytes(), created: s.now().Unix()}
		b.files[f.id] = f
		fb.output = f.id
	}
	if errOut.Len() > 0 {
		f := &file{id: b.newID("file"), purpose: "batch_output", name: "batch_errors.jsonl", data: errOut.Bytes(), created: s.now().Unix()}
		b.files[f.id] = f
		fb.errorFile = f.id
	}
}

// answerLine runs one request body through the chat endpoint in process.
func (s *Server) answerLine(body []byte) (status int, out any) {
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.cfg.APIKey)
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if recover() != nil { // a dropped connection: the line fails
				rec = httptest.NewRecorder()
				rec.Code = http.StatusInternalServerError
				rec.Body.WriteString(`{"error":{"message":"fakeai: connection dropped","type":"server_error"}}`)
			}
		}()
		s.serveChat(rec, req)
	}()
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		v = rec.Body.String()
	}
	return rec.Code, v
}

func writeLine(w *bytes.Buffer, v any) {
	b, _ := json.Marshal(v)
	w.Write(b)
	w.WriteByte('\n')
}

func batchJSON(fb *fakeBatch) map[string]any {
	m := map[string]any{
		"id": fb.id, "object": "batch", "endpoint": fb.endpoint, "input_file_id": fb.input,
		"completion_window": fb.window, "status": fb.status, "created_at": fb.created.Unix(),
		"expires_at": fb.expires.Unix(), "metadata": fb.metadata,
		"request_counts": map[string]any{"total": fb.total, "completed": fb.completed, "failed": fb.failed},
	}
	if fb.output != "" {
		m["output_file_id"] = fb.output
	}
	if fb.errorFile != "" {
		m["error_file_id"] = fb.errorFile
	}
	if fb.errs != nil {
		data := make([]any, len(fb.errs))
		for i, e := range fb.errs {
			data[i] = e
		}
		m["errors"] = map[string]any{"object": "list", "data": data}
	}
	for k, v := range fb.stamps {
		m[k] = v
	}
	return m
}
