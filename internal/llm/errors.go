package llm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/trialcat/trialcat/internal/wire"
)

// Sentinel errors.
var (
	// ErrAttemptsExhausted is returned by Caller.Call when the prior attempts already used up
	// MaxAttempts, so no attempt was made.
	ErrAttemptsExhausted = errors.New("no attempts left")
	// ErrNoProvider is returned by Caller.Call when Caller.Provider is nil.
	ErrNoProvider = errors.New("no provider")
	// ErrResponseTooLarge is a response body over OpenAIConfig.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response too large")
)

// Class says what kind of failure an attempt had.
type Class string

// Failure classes.
const (
	// ClassRateLimited is HTTP 429 without insufficient_quota: retry after a pause.
	ClassRateLimited Class = "rate_limited"
	// ClassServerError is HTTP 5xx (and 408/409), an empty or malformed response: retry.
	ClassServerError Class = "server_error"
	// ClassTimeout is an attempt that hit its own deadline: retry.
	ClassTimeout Class = "timeout"
	// ClassConnection is a dropped, refused or reset connection: retry.
	ClassConnection Class = "connection"
	// ClassInvalidJSON is an answer whose content is not JSON: retry.
	ClassInvalidJSON Class = "invalid_json"
	// ClassSchemaViolation is a JSON answer that failed schema validation: retry.
	ClassSchemaViolation Class = "schema_violation"
	// ClassRefusal is a model refusal (message.refusal or finish_reason content_filter): retry,
	// since sampling may answer next time.
	ClassRefusal Class = "refusal"
	// ClassTruncated is an answer cut by the token limit (finish_reason length): retry.
	ClassTruncated Class = "truncated"
	// ClassBadRequest is HTTP 400/404/422 and other 4xx: the request itself is wrong; the
	// record fails without retry.
	ClassBadRequest Class = "bad_request"
	// ClassAuth is HTTP 401/403: fatal, stop the run.
	ClassAuth Class = "auth"
	// ClassInsufficientQuota is HTTP 429 with code or type insufficient_quota: fatal.
	ClassInsufficientQuota Class = "insufficient_quota"
	// ClassTooLong is a prompt over the model's context (HTTP 413, or 400 with code
	// context_length_exceeded): the record fails without retry.
	ClassTooLong Class = "too_long"
	// ClassCanceled is an attempt stopped because the parent context ended: not retried.
	ClassCanceled Class = "canceled"
	// ClassUnreachable is a request that never reached a server: the connection was refused, the
	// name did not resolve, the TLS handshake failed, no route. It does not use up a record's
	// attempts (the record is not at fault); see Caller.MaxUnreachable.
	ClassUnreachable Class = "unreachable"
	// ClassEndpointNotFound is a 404 for the chat completions endpoint: usually a base URL
	// that is not an OpenAI-compatible API root.
	ClassEndpointNotFound Class = "endpoint_not_found"
	// ClassResponseTooLarge is an answer whose body passed OpenAIConfig.MaxResponseBytes.
	ClassResponseTooLarge Class = "response_too_large"
	// ClassFlexUnavailable is HTTP 429 "Resource Unavailable" to a service_tier flex request: the
	// flex tier has no capacity now. It is retried after a backoff without using up the record's
	// attempts and, after Caller.FlexFallback of them, sent on the default tier.
	ClassFlexUnavailable Class = wire.ClassFlexUnavailable
	// ClassWorkerCrashed marks a record whose every attempt ended with the worker process dying
	// (killed, out of memory, a crash): it is not sent again.
	ClassWorkerCrashed Class = "worker_crashed"
)

// Error is a classified failure of one attempt.
type Error struct {
	// Class says what kind of failure this was.
	Class Class
	// Status is the HTTP status, 0 when there was no HTTP answer.
	Status int
	// Message is a human-readable cause, already redacted of secrets.
	Message string
	// RetryAfter is the wait the server asked for, 0 when it did not ask.
	RetryAfter time.Duration
	// RateLimit holds the answer's rate-limit headers, nil when there were none.
	RateLimit http.Header

	// cause is kept only for context errors, so errors.Is(err, context.Canceled) works. Other
	// causes are dropped on purpose: their messages may carry URLs or secrets.
	cause error
}

// Error returns "class: HTTP status: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Class))
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the context error behind a timeout or canceled class, else nil.
func (e *Error) Unwrap() error { return e.cause }

// Retryable reports whether another attempt may succeed.
func (e *Error) Retryable() bool {
	switch e.Class {
	case ClassRateLimited, ClassFlexUnavailable, ClassServerError, ClassTimeout, ClassConnection,
		ClassInvalidJSON, ClassSchemaViolation, ClassRefusal, ClassTruncated, ClassResponseTooLarge,
		ClassUnreachable, ClassEndpointNotFound:
		return true
	}
	return false
}

// Fatal reports whether the whole run must stop: the key is refused or the quota is gone.
func (e *Error) Fatal() bool {
	return e.Class == ClassAuth || e.Class == ClassInsufficientQuota
}

// Refusal says, for a Fatal error, what the API refused and what the user should check; "" for
// an error that is not fatal.
func (e *Error) Refusal() string {
	switch e.Class {
	case ClassAuth:
		return fmt.Sprintf("the API refused the key (HTTP %d: %s): check OPENAI_API_KEY", e.Status, e.Message)
	case ClassInsufficientQuota:
		return fmt.Sprintf("the API refused the run for lack of quota (HTTP %d: %s): check the account's plan and billing", e.Status, e.Message)
	}
	return ""
}

// Classify maps an error from a Provider, the openai SDK or the network to an *Error. It
// returns nil for nil and an *Error found in err's chain as is. Messages are redacted of
// "Bearer ..." values and sk- keys; providers that know their key redact it too (see Redact).
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var le *Error
	if errors.As(err, &le) {
		return le
	}
	if errors.Is(err, ErrResponseTooLarge) {
		return &Error{Class: ClassResponseTooLarge, Message: Redact(rootMessage(err)), cause: err}
	}
	var ae *openai.Error
	if errors.As(err, &ae) {
		return classifyAPI(ae)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Class: ClassCanceled, Message: "canceled", cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Class: ClassTimeout, Message: "attempt deadline exceeded", cause: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Class: ClassTimeout, Message: "network timeout: " + Redact(rootMessage(err))}
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return &Error{Class: ClassServerError, Message: "malformed response: " + Redact(err.Error())}
	}
	if unreachable(err) {
		msg := rootMessage(err)
		if strings.Contains(msg, plainHTTP) {
			msg = "connect: the server speaks plain HTTP, not HTTPS (use http:// in the URL)"
		}
		return &Error{Class: ClassUnreachable, Message: Redact(msg), cause: err}
	}
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) || errors.As(err, &oe) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "error reading response body") {
		return &Error{Class: ClassConnection, Message: "connection failed: " + Redact(rootMessage(err))}
	}
	// What is left are request setup errors of the SDK: retrying will not fix them.
	return &Error{Class: ClassBadRequest, Message: Redact(err.Error())}
}

// plainHTTP is how net/http says that an https:// URL's server answered in plain HTTP.
const plainHTTP = "server gave HTTP response to HTTPS client"

// unreachable reports whether err means the request never reached a server: refused, a name
// that does not resolve, a failed TLS handshake, no route or network.
func unreachable(err error) bool {
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &dns), errors.As(err, &cert), errors.As(err, &rec), errors.As(err, &ua), errors.As(err, &hn):
		return true
	}
	// net/http says these in words only: an https:// URL whose server speaks plain HTTP, and a
	// scheme it has no transport for. Neither request reached an API.
	if msg := err.Error(); strings.Contains(msg, plainHTTP) || strings.Contains(msg, "unsupported protocol scheme") {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// rootMessage returns the message of the innermost error of a *url.Error, which carries the
// request URL in its own message.
func rootMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

func classifyAPI(ae *openai.Error) *Error {
	e := &Error{Status: ae.StatusCode, Message: Redact(ae.Message)}
	if e.Message == "" {
		e.Message = http.StatusText(ae.StatusCode)
	}
	if ae.Response != nil {
		e.RetryAfter = ParseRetryAfter(ae.Response.Header, time.Now())
		e.RateLimit = RateHeaders(ae.Response.Header)
	}
	code := strings.ToLower(ae.Code + " " + ae.Type)
	switch s := ae.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Class = ClassAuth
	case s == http.StatusTooManyRequests && strings.Contains(code, "insufficient_quota"):
		e.Class = ClassInsufficientQuota
	case s == http.StatusTooManyRequests && (strings.Contains(code, "resource_unavailable") ||
		strings.Contains(strings.ToLower(ae.Message), "resource unavailable")):
		e.Class = ClassFlexUnavailable
	case s == http.StatusTooManyRequests:
		e.Class = ClassRateLimited
	case s == http.StatusRequestTimeout:
		e.Class = ClassTimeout
	case s == http.StatusConflict || s >= 500:
		e.Class = ClassServerError
	case s == http.StatusNotFound && !strings.Contains(code, "model"):
		e.Class = ClassEndpointNotFound
	case s == http.StatusRequestEntityTooLarge || strings.Contains(code, "context_length_exceeded"):
		e.Class = ClassTooLong
	default:
		e.Class = ClassBadRequest
	}
	return e
}

// ParseRetryAfter reads the wait a server asked for: retry-after-ms (milliseconds) first, then
// retry-after (seconds, or an HTTP date relative to now). It returns 0 when neither is usable.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e9 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

var (
	bearerRE = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',;]+`)
	skKeyRE  = regexp.MustCompile(`sk-[A-Za-z0-9_\-]{8,}`)
)

// Redacted replaces a secret in redacted text.
const Redacted = "[REDACTED]"

// Redact removes secrets from s: every occurrence of each non-empty secret in any letter case,
// percent- or \u-escaped, or split by white space or escaped line breaks (a server that echoes
// a key may quote it in any of these forms), every "Bearer <token>" value and every sk-... key.
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = secretPattern(sec).ReplaceAllString(s, Redacted)
		} else if sec != "" {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	s = bearerRE.ReplaceAllString(s, "${1}"+Redacted)
	return skKeyRE.ReplaceAllString(s, "sk-"+Redacted)
}

// secretPattern matches sec in the forms Redact removes: each byte as itself (any case), %XX or
// \u00XX, with white space or an escaped \n, \r or \t allowed between bytes.
func secretPattern(sec string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?i)")
	for i := 0; i < len(sec); i++ {
		if i > 0 {
			b.WriteString(`(?:\s|\\[nrt])*`)
		}
		c := sec[i]
		fmt.Fprintf(&b, `(?:%s|%%%02x|\\u00%02x)`, regexp.QuoteMeta(string(c)), c, c)
	}
	return regexp.MustCompile(b.String())
}

// redactError returns a copy of e whose message is redacted of secrets.
func redactError(e *Error, secrets ...string) *Error {
	if e == nil {
		return nil
	}
	c := *e
	c.Message = Redact(c.Message, secrets...)
	return &c
}

// RateHeaders keeps the rate-limit headers of an answer (x-ratelimit-*, retry-after,
// retry-after-ms), so limiters can follow the server; it returns nil when there are none.
func RateHeaders(h http.Header) http.Header {
	var out http.Header
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-ratelimit-") || lk == "retry-after" || lk == "retry-after-ms" {
			if out == nil {
				out = http.Header{}
			}
			out[k] = v
		}
	}
	return out
}
