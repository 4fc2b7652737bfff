package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// The OpenAI Batch API: a JSONL file of requests is uploaded, a batch runs it within 24 hours
// at half the price, and its output and error files hold one answer per line, matched to the
// requests by custom_id. This file holds the wire formats (request lines, output lines) and a
// client over the SDK; the worker decides what to submit and when.

// Batch API limits per input file (OpenAI's documented limits).
const (
	BatchMaxRequests = 50_000
	BatchMaxBytes    = 200 << 20
	// BatchEndpoint and BatchWindow are what every batch is created with.
	BatchEndpoint = "/v1/chat/completions"
	BatchWindow   = "24h"
	// maxBatchLine bounds one line of an output file.
	maxBatchLine = 64 << 20
)

// BatchLine is one request line of a Batch API input file (also what vllm run-batch reads).
type BatchLine struct {
	CustomID string `json:"custom_id"`
	Method   string `json:"method"`
	URL      string `json:"url"`
	Body     any    `json:"body"`
}

// RequestLine is req as one line of an input file, with the record ID as its custom_id: the
// same body a live request sends.
func (o *OpenAI) RequestLine(req Request) ([]byte, error) {
	body, err := o.Body(req)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(BatchLine{CustomID: req.RecordID, Method: http.MethodPost, URL: BatchEndpoint, Body: json.RawMessage(body)})
	if err != nil {
		return nil, fmt.Errorf("record %s: encode the batch request: %w", req.RecordID, err)
	}
	return append(b, '\n'), nil
}

// OutputLine is one line of an output or error file.
type OutputLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ErrMalformedLine means a line of an output file is not an answer line.
var ErrMalformedLine = errors.New("not a batch output line")

// ParseOutputLine reads one line of an output or error file.
func ParseOutputLine(line []byte) (OutputLine, error) {
	var l OutputLine
	if err := json.Unmarshal(line, &l); err != nil {
		return l, fmt.Errorf("%w: %w", ErrMalformedLine, err)
	}
	if l.CustomID == "" || (l.Response == nil && l.Error == nil) {
		return l, fmt.Errorf("%w: no custom_id, or neither response nor error", ErrMalformedLine)
	}
	return l, nil
}

// Expired reports whether the line is a request the batch did not run before its window ended
// (or before it was cancelled): not the record's fault, to be sent again.
func (l OutputLine) Expired() bool {
	return l.Error != nil && (l.Error.Code == "batch_expired" || l.Error.Code == "batch_cancelled")
}

// Reply reads the line's answer as a live answer is read: model, usage, content, refusal or
// truncation. A line without a 200 answer returns the error a live request would have got.
func (o *OpenAI) Reply(req Request, l OutputLine) (Reply, error) {
	switch {
	case l.Response == nil:
		return Reply{}, &Error{Class: ClassServerError, Message: fmt.Sprintf("batch error %s: %s", l.Error.Code, Redact(l.Error.Message, o.cfg.APIKey))}
	case l.Response.StatusCode != http.StatusOK:
		var body struct {
			Error openai.Error `json:"error"`
		}
		_ = json.Unmarshal(l.Response.Body, &body)
		body.Error.StatusCode = l.Response.StatusCode
		return Reply{}, redactError(classifyAPI(&body.Error), o.cfg.APIKey)
	}
	resp, err := decodeCompletion(l.Response.Body)
	if err != nil {
		return Reply{}, &Error{Class: ClassServerError, Message: "the answer in the output file is not a chat completion: " + clip(err.Error(), 200)}
	}
	return o.reply(req, resp, nil)
}

// BatchInfo is what the API says of one batch.
type BatchInfo struct {
	ID, Status                             string
	InputFileID, OutputFileID, ErrorFileID string
	Total, Completed, Failed               int64
	Errors                                 []string
	Metadata                               map[string]string
	// ExpiresAt is when the API says the batch's window ends (zero when it does not say).
	ExpiresAt time.Time
}

// Terminal reports whether the batch has ended: its files, if any, are final.
func (b BatchInfo) Terminal() bool {
	switch b.Status {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

func batchInfo(b *openai.Batch) BatchInfo {
	info := BatchInfo{ID: b.ID, Status: string(b.Status), InputFileID: b.InputFileID, OutputFileID: b.OutputFileID,
		ErrorFileID: b.ErrorFileID, Total: b.RequestCounts.Total, Completed: b.RequestCounts.Completed,
		Failed: b.RequestCounts.Failed, Metadata: b.Metadata}
	if b.ExpiresAt > 0 {
		info.ExpiresAt = time.Unix(b.ExpiresAt, 0)
	}
	for _, e := range b.Errors.Data {
		msg := e.Message
		if e.Line > 0 {
			msg = fmt.Sprintf("line %d: %s", e.Line, msg)
		}
		info.Errors = append(info.Errors, e.Code+": "+msg)
	}
	return info
}

// BatchAPI is a client of the Files and Batches endpoints. Every error it returns is an *Error
// free of the API key.
type BatchAPI struct {
	key     string
	files   openai.FileService
	batches openai.BatchService
}

// NewBatchAPI returns a client for cfg's server and key.
func NewBatchAPI(cfg OpenAIConfig) *BatchAPI {
	base, hc := cfg.endpoint()
	cfg.Timeout = 0 // uploads and downloads of large files take their time; ctx bounds them
	opts := clientOptions(cfg, base, hc, false)
	return &BatchAPI{key: cfg.APIKey, files: openai.NewFileService(opts...), batches: openai.NewBatchService(opts...)}
}

func (a *BatchAPI) fail(err error) error { return redactError(Classify(err), a.key) }

// Upload sends an input file with purpose batch and returns its file ID.
func (a *BatchAPI) Upload(ctx context.Context, name string, data []byte) (string, error) {
	f, err := a.files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(data), name, "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		return "", a.fail(err)
	}
	return f.ID, nil
}

// Create starts a batch over an uploaded input file.
func (a *BatchAPI) Create(ctx context.Context, inputFileID string, metadata map[string]string) (BatchInfo, error) {
	b, err := a.batches.New(ctx, openai.BatchNewParams{InputFileID: inputFileID, Endpoint: BatchEndpoint, CompletionWindow: BatchWindow, Metadata: metadata})
	if err != nil {
		return BatchInfo{}, a.fail(err)
	}
	return batchInfo(b), nil
}

// Get retrieves a batch.
func (a *BatchAPI) Get(ctx context.Context, id string) (BatchInfo, error) {
	b, err := a.batches.Get(ctx, id)
	if err != nil {
		return BatchInfo{}, a.fail(err)
	}
	return batchInfo(b), nil
}

// Cancel asks the API to cancel a batch.
func (a *BatchAPI) Cancel(ctx context.Context, id string) (BatchInfo, error) {
	b, err := a.batches.Cancel(ctx, id)
	if err != nil {
		return BatchInfo{}, a.fail(err)
	}
	return batchInfo(b), nil
}

// FindByInput looks through the newest batches (up to pages×100) for one created over
// inputFileID: a batch whose creation was answered but never recorded (a crash at that moment).
func (a *BatchAPI) FindByInput(ctx context.Context, inputFileID string, pages int) (*BatchInfo, error) {
	params := openai.BatchListParams{Limit: openai.Int(100)}
	for range pages {
		page, err := a.batches.List(ctx, params)
		if err != nil {
			return nil, a.fail(err)
		}
		for i := range page.Data {
			if page.Data[i].InputFileID == inputFileID {
				info := batchInfo(&page.Data[i])
				return &info, nil
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return nil, nil
		}
		params.After = openai.String(page.Data[len(page.Data)-1].ID)
	}
	return nil, nil
}

// Lines streams a file's content line by line (an output file may be hundreds of megabytes).
func (a *BatchAPI) Lines(ctx context.Context, fileID string, fn func(line []byte) error) error {
	resp, err := a.files.Content(ctx, fileID, option.WithHeader("Accept", "application/octet-stream"))
	if err != nil {
		return a.fail(err)
	}
	defer resp.Body.Close()
	return EachLine(resp.Body, fn)
}

// EachLine calls fn for every non-empty line of r (a JSONL file).
func EachLine(r io.Reader, fn func(line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBatchLine)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			if err := fn(line); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read a batch file: %w", err)
	}
	return nil
}
