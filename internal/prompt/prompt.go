package prompt

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/record"
)

// Sentinel errors.
var (
	// ErrMissingField marks a template that references a field the record does not have.
	// Render returns it inside a *MissingFieldError, which also wraps exitcode.ErrUsage.
	ErrMissingField = errors.New("template field is missing")
)

// Block names a template may define.
const (
	SystemBlock = "system"
	UserBlock   = "user"
)

// Messages are the rendered prompt of one record.
type Messages struct {
	// System is the system message; "" means none.
	System string
	// User is the user message.
	User string
}

// MissingFieldError reports a template field a record lacks.
type MissingFieldError struct {
	// RecordID is the ID of the record being rendered.
	RecordID string
	// Field is the dotted path that is missing, relative to .Record when the template used it.
	Field string
	// Where is the template position ("name:line:col"), when known.
	Where string
}

// Error says which record lacks which field and how to make the field optional.
func (e *MissingFieldError) Error() string {
	where := ""
	if e.Where != "" {
		where = " (at " + e.Where + ")"
	}
	return fmt.Sprintf("record %s: template field %q is missing%s; use {{get %q}} for a field some records lack",
		e.RecordID, e.Field, where, e.Field)
}

// Unwrap returns ErrMissingField and exitcode.ErrUsage.
func (e *MissingFieldError) Unwrap() []error { return []error{ErrMissingField, exitcode.ErrUsage} }

// Template is a parsed prompt template. It is safe for concurrent use.
type Template struct {
	name   string
	tmpl   *template.Template
	blocks bool // "system" and/or "user" are defined
	system bool // "system" is defined
	// direct holds the rendered blocks when the direct renderer can walk them (fast.go).
	direct direct
	// staticSystem is the system block's text when it is text alone, the same for every record.
	staticSystem string
	static       bool
	// size is the length of the last user message rendered, to size the next one's buffer.
	size atomic.Int64
}

// data is what the template sees as dot. .Record is a method, so the record is decoded whole
// only by a template that uses it; the helpers look paths up in its JSON (record.Lazy).
type data struct {
	ID    string
	Index int64
	rec   *record.Lazy
}

// Record is the record decoded as maps, numbers as json.Number.
func (d data) Record() (map[string]any, error) { return d.rec.Map() }

// Parse parses a template. name (usually the file name) appears in errors. Errors wrap
// exitcode.ErrUsage.
func Parse(name, text string) (*Template, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs(nil)).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("prompt template %s: %v; fix the template syntax: %w", name, err, exitcode.ErrUsage)
	}
	out := &Template{name: name, tmpl: t}
	sys, usr := t.Lookup(SystemBlock), t.Lookup(UserBlock)
	switch {
	case usr != nil:
		out.blocks, out.system = true, sys != nil
		if !blank(t.Tree) {
			return nil, fmt.Errorf("prompt template %s: text outside the {{define}} blocks would be ignored because the template defines a %q block; move it into the %q or %q block: %w",
				name, UserBlock, SystemBlock, UserBlock, exitcode.ErrUsage)
		}
	case sys != nil:
		return nil, fmt.Errorf("prompt template %s: defines a %q block but no %q block; add {{define %q}}...{{end}} holding the record: %w",
			name, SystemBlock, UserBlock, UserBlock, exitcode.ErrUsage)
	case blank(t.Tree):
		return nil, fmt.Errorf("prompt template %s: the template is empty: %w", name, exitcode.ErrUsage)
	}
	trees := map[string]*parse.Tree{out.userBlock(): t.Lookup(out.userBlock()).Tree}
	if out.system {
		trees[SystemBlock] = sys.Tree
		out.staticSystem, out.static = constText(sys.Root)
	}
	out.direct = compileDirect(trees)
	return out, nil
}

// userBlock is the name of the template that renders the user message.
func (t *Template) userBlock() string {
	if t.blocks {
		return UserBlock
	}
	return t.name
}

// Name returns the name given to Parse.
func (t *Template) Name() string { return t.name }

// blank reports whether a parse tree outputs nothing but white space.
func blank(tree *parse.Tree) bool {
	if tree == nil || tree.Root == nil {
		return true
	}
	for _, n := range tree.Root.Nodes {
		tn, ok := n.(*parse.TextNode)
		if !ok || strings.TrimSpace(string(tn.Text)) != "" {
			return false
		}
	}
	return true
}

// Render renders the messages for one record. Errors name the record's ID and wrap
// exitcode.ErrUsage; a missing field gives a *MissingFieldError.
func (t *Template) Render(rec record.Record) (Messages, error) {
	lazy := record.NewLazy(rec.Data)
	if !lazy.IsObject() {
		if _, err := lazy.Map(); err != nil {
			return Messages{}, fmt.Errorf("record %s: %v: %w", rec.ID, err, exitcode.ErrUsage)
		}
	}
	d := data{ID: rec.ID, Index: rec.Index, rec: lazy}
	if msgs, ok := t.renderDirect(d); ok {
		return msgs, nil
	}
	return t.renderTemplate(d)
}

// renderDirect renders with the direct renderer; ok is false when text/template must.
func (t *Template) renderDirect(d data) (Messages, bool) {
	if t.direct == nil {
		return Messages{}, false
	}
	var msgs Messages
	if t.system {
		if t.static {
			msgs.System = t.staticSystem
		} else if s, ok := t.direct.render(SystemBlock, d, len(t.staticSystem)); ok {
			msgs.System = s
		} else {
			return Messages{}, false
		}
	}
	size := int(t.size.Load())
	user, ok := t.direct.render(t.userBlock(), d, size+size/4+64)
	if !ok {
		return Messages{}, false
	}
	t.size.Store(int64(len(user)))
	msgs.User = user
	return msgs, true
}

// renderTemplate renders with text/template.
func (t *Template) renderTemplate(d data) (Messages, error) {
	tmpl, err := t.tmpl.Clone()
	if err != nil {
		return Messages{}, fmt.Errorf("prompt template %s: %w", t.name, err)
	}
	tmpl.Funcs(funcs(d.rec))
	var msgs Messages
	if t.system {
		if msgs.System, err = execute(tmpl, SystemBlock, d); err != nil {
			return Messages{}, renderError(d.ID, err)
		}
	}
	if msgs.User, err = execute(tmpl, t.userBlock(), d); err != nil {
		return Messages{}, renderError(d.ID, err)
	}
	return msgs, nil
}

func execute(t *template.Template, name string, d data) (string, error) {
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// renderError turns an execution error into one that names the record and, for a missing
// field, the field.
func renderError(id string, err error) error {
	where := ""
	if m := regexp.MustCompile(`^template: (.+?): executing `).FindStringSubmatch(err.Error()); m != nil {
		where = m[1]
	}
	var mf *missingPath
	if errors.As(err, &mf) {
		return &MissingFieldError{RecordID: id, Field: mf.path, Where: where}
	}
	if m := regexp.MustCompile(`at <([^>]*)>: (?:nil data; )?(?:map has )?no entry for key "((?:[^"\\]|\\.)*)"`).FindStringSubmatch(err.Error()); m != nil {
		return &MissingFieldError{RecordID: id, Field: missingChain(m[1], m[2]), Where: where}
	}
	return fmt.Errorf("record %s: %v: %w", id, err, exitcode.ErrUsage)
}

// missingChain turns a field chain such as ".Record.a.b.c" and the missing key "b" into "a.b".
func missingChain(chain, key string) string {
	chain = strings.TrimPrefix(chain, ".")
	chain = strings.TrimPrefix(chain, "Record.")
	segs := strings.Split(chain, ".")
	for i, s := range segs {
		if s == key {
			return strings.Join(segs[:i+1], ".")
		}
	}
	return key
}

// missingPath is the error of the field helper.
type missingPath struct{ path string }

func (e *missingPath) Error() string { return fmt.Sprintf("field %q is missing", e.path) }

// funcs returns the helpers, bound to one decoded record (nil while parsing).
func funcs(rec *record.Lazy) template.FuncMap {
	lookup := func(path string) (any, bool) {
		if rec == nil {
			return nil, false
		}
		return rec.Lookup(path)
	}
	return template.FuncMap{
		"field": func(path string) (any, error) {
			v, ok := lookup(path)
			if !ok {
				return nil, &missingPath{path: path}
			}
			if v == nil {
				return "", nil
			}
			return v, nil
		},
		"get": func(path string) any {
			v, ok := lookup(path)
			if !ok || v == nil {
				return ""
			}
			return v
		},
		"list": func(path string) []string { return list(rec, path) },
		"at": func(v any, path string) any {
			got, ok := record.Lookup(v, path)
			if !ok || got == nil {
				return ""
			}
			return got
		},
		"join":     join,
		"truncate": truncate,
	}
}

// list is the list helper: toList of the value at path, an array's objects read only for their
// names (record.Lazy.Names).
func list(rec *record.Lazy, path string) []string {
	if rec == nil {
		return nil
	}
	items, isArray, found := rec.Names(path)
	switch {
	case !found:
		return nil
	case !isArray:
		v, _ := rec.Lookup(path)
		return toList(v)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it.Object {
			if it.Named && it.Value != nil {
				out = append(out, text(it.Value))
			}
			continue
		}
		if s := text(it.Value); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// toList turns a value into strings: see list in the package documentation.
func toList(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				if name, ok := m["name"]; ok && name != nil {
					out = append(out, text(name))
				}
				continue
			}
			if s := text(e); s != "" {
				out = append(out, s)
			}
		}
		return out
	default:
		if s := text(x); s != "" {
			return []string{s}
		}
		return nil
	}
}

func join(sep string, v any) string {
	return strings.Join(toList(v), sep)
}

func truncate(n int, v any) string {
	s := text(v)
	if n < 0 || len(s) <= n {
		return s // n runes take at least n bytes
	}
	if !utf8.ValidString(s) { // each invalid byte becomes U+FFFD in the part kept
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		return strings.TrimRight(string([]rune(s)[:n]), " \t\r\n") + "…"
	}
	cut, runes := 0, 0
	for cut < len(s) && runes < n {
		_, size := utf8.DecodeRuneInString(s[cut:])
		cut += size
		runes++
	}
	if cut == len(s) {
		return s
	}
	return strings.TrimRight(s[:cut], " \t\r\n") + "…"
}

// text renders a value as template output would, with JSON for objects and arrays.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool, int, int64, float64:
		return fmt.Sprint(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}
