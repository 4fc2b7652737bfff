// Package registry reads ClinicalTrials.gov through its API v2: pages of studies for a query
// (/api/v2/studies with pageToken), the data's version (/api/v2/version), politely (at most
// Config.RPM requests a minute, Retry-After honoured) and patiently (429, 5xx, cut-off bodies
// and timeouts retried with backoff). Fetch writes a query's studies to a JSON Lines file that a
// kill cannot leave half-written; Sync keeps a local mirror current by fetching only what changed.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/wait"
)

// DefaultBaseURL is the API's base.
const DefaultBaseURL = "https://clinicaltrials.gov/api/v2"

// Defaults of Config and Query.
const (
	// DefaultRPM keeps under the ~50 requests a minute from one address that users report
	// being refused above (the API publishes no limit).
	DefaultRPM         = 50
	DefaultPageSize    = 1000
	MaxPageSize        = 1000
	DefaultMaxAttempts = 8
	maxPageBytes       = 512 << 20
)

// Config sets up a Client.
type Config struct {
	BaseURL   string
	HTTP      *http.Client
	UserAgent string
	// RPM bounds requests a minute; 0 means DefaultRPM, below 0 none.
	RPM int
	// MaxAttempts bounds the attempts of one request; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// Sleep waits; nil means wait.Sleep (tests pass a fast one).
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, when set, hears of each retried attempt.
	OnRetry func(attempt int, err error, delay time.Duration)
}

// Client is an API v2 client. It is safe for concurrent use.
type Client struct {
	cfg  Config
	mu   sync.Mutex
	next time.Time // the earliest time of the next request (the pace)
}

// New returns a client for cfg.
func New(cfg Config) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 5 * time.Minute}
	}
	if cfg.RPM == 0 {
		cfg.RPM = DefaultRPM
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Sleep == nil {
		cfg.Sleep = wait.Sleep
	}
	return &Client{cfg: cfg}
}

// Query selects studies.
type Query struct {
	Term   string   `json:"term,omitempty"`
	Cond   string   `json:"cond,omitempty"`
	Status []string `json:"status,omitempty"`
	// Since keeps studies whose LastUpdatePostDate is on or after this date (YYYY-MM-DD).
	Since    string   `json:"since,omitempty"`
	Fields   []string `json:"fields,omitempty"`
	PageSize int      `json:"page_size,omitempty"`
}

// Check refuses a query the API would.
func (q Query) Check() error {
	if q.PageSize < 0 || q.PageSize > MaxPageSize {
		return fmt.Errorf("--page-size %d: want 1 to %d", q.PageSize, MaxPageSize)
	}
	if q.Since != "" {
		if _, err := time.Parse(time.DateOnly, q.Since); err != nil {
			return fmt.Errorf("--since %q: want a date like 2026-11-01", q.Since)
		}
	}
	return nil
}

// Values are the query's URL parameters (without the page token).
func (q Query) Values() url.Values {
	v := url.Values{}
	if q.Term != "" {
		v.Set("query.term", q.Term)
	}
	if q.Cond != "" {
		v.Set("query.cond", q.Cond)
	}
	if len(q.Status) > 0 {
		v.Set("filter.overallStatus", strings.Join(q.Status, ","))
	}
	if q.Since != "" {
		v.Set("filter.advanced", "AREA[LastUpdatePostDate]RANGE["+q.Since+",MAX]")
	}
	if len(q.Fields) > 0 {
		v.Set("fields", strings.Join(q.Fields, ","))
	}
	size := q.PageSize
	if size == 0 {
		size = DefaultPageSize
	}
	v.Set("pageSize", strconv.Itoa(size))
	v.Set("sort", "LastUpdatePostDate:asc")
	v.Set("format", "json")
	return v
}

// Key identifies the query: a page token and a checkpoint belong to one key.
func (q Query) Key() string {
	s := sha256.Sum256([]byte(q.Values().Encode()))
	return hex.EncodeToString(s[:8])
}

// SelectionKey identifies the studies the query selects, whatever its page size and since: a
// mirror belongs to one selection.
func (q Query) SelectionKey() string {
	q.PageSize, q.Since = 0, ""
	return q.Key()
}

// Page is one page of studies.
type Page struct {
	Studies       []json.RawMessage `json:"studies"`
	NextPageToken string            `json:"nextPageToken,omitempty"`
	TotalCount    *int64            `json:"totalCount,omitempty"`
}

// Version is /api/v2/version's answer.
type Version struct {
	APIVersion    string `json:"apiVersion"`
	DataTimestamp string `json:"dataTimestamp"`
}

// Error is an answer the API gave that retrying will not change (a 4xx other than 429).
type Error struct {
	Status int
	Body   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("the registry answered HTTP %d: %s", e.Status, e.Body)
}

// Page fetches one page of q, from token ("" for the first), with its total count when count.
func (c *Client) Page(ctx context.Context, q Query, token string, count bool) (Page, error) {
	v := q.Values()
	if token != "" {
		v.Set("pageToken", token)
	}
	if count {
		v.Set("countTotal", "true")
	}
	var p Page
	err := c.get(ctx, "/studies?"+v.Encode(), &p)
	return p, err
}

// Version fetches the data's version and timestamp.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	err := c.get(ctx, "/version", &v)
	return v, err
}

// retryable is an attempt that failed in a way a later attempt may not.
type retryable struct {
	err        error
	retryAfter time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// get fetches path into v, with the pace and the retries.
func (c *Client) get(ctx context.Context, path string, v any) error {
	var last error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		if err := c.pace(ctx); err != nil {
			return err
		}
		err := c.once(ctx, path, v)
		if err == nil {
			return nil
		}
		var r *retryable
		if !errors.As(err, &r) {
			return err
		}
		last = err
		if attempt == c.cfg.MaxAttempts {
			break
		}
		delay := r.retryAfter
		if delay <= 0 {
			delay = min(time.Second<<(attempt-1), time.Minute)
			delay += time.Duration(rand.Float64() * float64(delay) / 4)
		}
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry(attempt, err, delay)
		}
		if err := c.cfg.Sleep(ctx, delay); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: %d attempts: %w", path, c.cfg.MaxAttempts, last)
}

// pace waits for the request's turn under the RPM bound.
func (c *Client) pace(ctx context.Context) error {
	if c.cfg.RPM < 0 {
		return ctx.Err()
	}
	interval := time.Minute / time.Duration(c.cfg.RPM)
	c.mu.Lock()
	now := time.Now()
	at := c.next
	if at.Before(now) {
		at = now
	}
	c.next = at.Add(interval)
	c.mu.Unlock()
	return c.cfg.Sleep(ctx, time.Until(at))
}

func (c *Client) once(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	res, err := c.cfg.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &retryable{err: fmt.Errorf("cannot reach the registry: %w", err)}
	}
	defer res.Body.Close()
	body := io.LimitReader(res.Body, maxPageBytes+1)
	switch {
	case res.StatusCode == http.StatusTooManyRequests:
		return &retryable{err: errors.New("the registry asked to slow down (HTTP 429)"), retryAfter: retryAfter(res.Header)}
	case res.StatusCode >= 500:
		return &retryable{err: fmt.Errorf("the registry answered HTTP %d", res.StatusCode)}
	case res.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(body, 500))
		return &Error{Status: res.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &retryable{err: fmt.Errorf("the registry's answer was cut off or is not JSON: %w", err)}
	}
	return nil
}

// retryAfter reads Retry-After (seconds or an HTTP date); 0 when absent.
func retryAfter(h http.Header) time.Duration {
	s := strings.TrimSpace(h.Get("Retry-After"))
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, 10*time.Minute)
	}
	if t, err := http.ParseTime(s); err == nil {
		return min(max(time.Until(t), 0), 10*time.Minute)
	}
	return 0
}

// studyKeys are the fields of a study a fetch and a sync read: its ID and last update.
type studyKeys struct {
	ProtocolSection struct {
		IdentificationModule struct {
			NCTID string `json:"nctId"`
		} `json:"identificationModule"`
		StatusModule struct {
			LastUpdate struct {
				Date string `json:"date"`
			} `json:"lastUpdatePostDateStruct"`
		} `json:"statusModule"`
	} `json:"protocolSection"`
}

func keysOf(study json.RawMessage) studyKeys {
	var k studyKeys
	_ = json.Unmarshal(study, &k)
	return k
}

// StudyID is a study's NCT ID, "" when it has none.
func StudyID(study json.RawMessage) string {
	return keysOf(study).ProtocolSection.IdentificationModule.NCTID
}

// LastUpdate is a study's LastUpdatePostDate, "" when it has none.
func LastUpdate(study json.RawMessage) string {
	return keysOf(study).ProtocolSection.StatusModule.LastUpdate.Date
}
