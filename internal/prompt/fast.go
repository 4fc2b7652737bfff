package prompt

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/template/parse"

	"github.com/trialcat/trialcat/internal/record"
)

// The direct renderer. text/template calls every helper through reflection and checks each
// value's type as it goes, which made it most of a prompt's rendering cost. Templates written in
// the common subset (text; {{if}}, {{with}} and {{range}} without variables, over lists; the
// helpers; or, and, not, print and printf; .ID and .Index) are walked here directly instead, with
// the same output. Whatever the subset does not hold is left to text/template: a template outside
// it statically (supported is false at Parse), and at run time any value the walk is not sure to
// print or test exactly as text/template would, and every error (so messages are text/template's
// own). A test renders every template in the tree both ways over every sample record.

// errFallback stops the direct walk; the caller renders with text/template instead.
type errFallback struct{}

// direct is the parsed blocks the direct renderer walks, by name.
type direct map[string]*parse.ListNode

// compileDirect returns the blocks of t that the subset holds, or nil when any does not.
func compileDirect(trees map[string]*parse.Tree) direct {
	d := direct{}
	for name, tree := range trees {
		if tree == nil || tree.Root == nil || !supported(tree.Root) {
			return nil
		}
		d[name] = tree.Root
	}
	return d
}

// supported reports whether the direct walk holds node and everything under it.
func supported(node parse.Node) bool {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return true
		}
		for _, c := range n.Nodes {
			if !supported(c) {
				return false
			}
		}
		return true
	case *parse.TextNode, *parse.CommentNode:
		return true
	case *parse.ActionNode:
		return supportedPipe(n.Pipe)
	case *parse.IfNode:
		return supportedPipe(n.Pipe) && supported(n.List) && supported(n.ElseList)
	case *parse.WithNode:
		return supportedPipe(n.Pipe) && supported(n.List) && supported(n.ElseList)
	case *parse.RangeNode:
		return supportedPipe(n.Pipe) && supported(n.List) && supported(n.ElseList)
	}
	return false
}

func supportedPipe(p *parse.PipeNode) bool {
	if p == nil || len(p.Decl) > 0 || p.IsAssign {
		return false
	}
	for i, c := range p.Cmds {
		if len(c.Args) == 0 {
			return false
		}
		if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
			if _, ok := helperArity[id.Ident]; !ok {
				return false
			}
			if (id.Ident == "or" || id.Ident == "and") && i > 0 {
				return false // a piped final argument: left to text/template
			}
		} else if len(c.Args) > 1 {
			return false // calling a method or field with arguments
		}
		for _, a := range c.Args {
			if !supportedArg(a) {
				return false
			}
		}
	}
	return true
}

// helperArity is the number of arguments each function the walk knows takes (-1: any).
var helperArity = map[string]int{
	"get": 1, "field": 1, "list": 1, "at": 2, "join": 2, "truncate": 2,
	"or": -1, "and": -1, "not": 1, "print": -1, "printf": -1,
}

func supportedArg(a parse.Node) bool {
	switch n := a.(type) {
	case *parse.IdentifierNode, *parse.DotNode, *parse.StringNode, *parse.BoolNode:
		return true
	case *parse.NumberNode:
		return n.IsInt && plainInt(n.Text) // 1.0, 1e3 and 'a' are other constants to text/template
	case *parse.FieldNode:
		return len(n.Ident) == 1 && (n.Ident[0] == "ID" || n.Ident[0] == "Index")
	case *parse.PipeNode:
		return supportedPipe(n)
	}
	return false
}

// plainInt reports whether s is a decimal integer: digits after an optional minus sign.
func plainInt(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" || len(s) > 18 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// constText is the output of a block that is text alone (a static system block), or ok false.
func constText(root *parse.ListNode) (string, bool) {
	var b []byte
	for _, n := range root.Nodes {
		switch x := n.(type) {
		case *parse.TextNode:
			b = append(b, x.Text...)
		case *parse.CommentNode:
		default:
			return "", false
		}
	}
	return string(b), true
}

// walker renders one record directly.
type walker struct {
	rec *record.Lazy
	d   data
	out []byte
}

// render walks block name; ok is false when text/template must render the record instead.
func (dt direct) render(name string, d data, size int) (s string, ok bool) {
	root := dt[name]
	if root == nil {
		return "", false
	}
	w := &walker{rec: d.rec, d: d, out: make([]byte, 0, size)}
	defer func() {
		if r := recover(); r != nil {
			if _, fb := r.(errFallback); !fb {
				panic(r)
			}
			s, ok = "", false
		}
	}()
	w.walk(root, rootDot{})
	return string(w.out), true
}

// rootDot is dot at the top of a block: the template's data.
type rootDot struct{}

func fallback() { panic(errFallback{}) }

func (w *walker) walk(node parse.Node, dot any) {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.walk(c, dot)
		}
	case *parse.TextNode:
		w.out = append(w.out, n.Text...)
	case *parse.CommentNode:
	case *parse.ActionNode:
		w.print(w.pipe(n.Pipe, dot))
	case *parse.IfNode:
		if truth(w.pipe(n.Pipe, dot)) {
			w.walk(n.List, dot)
		} else {
			w.walk(n.ElseList, dot)
		}
	case *parse.WithNode:
		if v := w.pipe(n.Pipe, dot); truth(v) {
			w.walk(n.List, v)
		} else {
			w.walk(n.ElseList, dot)
		}
	case *parse.RangeNode:
		switch v := w.pipe(n.Pipe, dot).(type) {
		case []any:
			if len(v) == 0 {
				w.walk(n.ElseList, dot)
			}
			for _, e := range v {
				if e == nil {
					fallback() // text/template's dot would be an invalid value
				}
				w.walk(n.List, e)
			}
		case []string:
			if len(v) == 0 {
				w.walk(n.ElseList, dot)
			}
			for _, e := range v {
				w.walk(n.List, e)
			}
		default:
			fallback()
		}
	default:
		fallback()
	}
}

// print appends v as text/template prints an action's value.
func (w *walker) print(v any) {
	switch x := v.(type) {
	case string:
		w.out = append(w.out, x...)
	case json.Number:
		w.out = append(w.out, x...)
	case bool:
		w.out = strconv.AppendBool(w.out, x)
	case int:
		w.out = strconv.AppendInt(w.out, int64(x), 10)
	case int64:
		w.out = strconv.AppendInt(w.out, x, 10)
	default:
		fallback()
	}
}

// truth is text/template's truth of the values the walk lets through.
func truth(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case json.Number:
		return x != ""
	case bool:
		return x
	case int:
		return x != 0
	case int64:
		return x != 0
	case []any:
		return len(x) > 0
	case []string:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	fallback()
	return false
}

func (w *walker) pipe(p *parse.PipeNode, dot any) any {
	var v any
	for i, c := range p.Cmds {
		var final any = noFinal{}
		if i > 0 {
			final = v
		}
		v = w.command(c, dot, final)
	}
	return v
}

// noFinal marks a command with no piped argument.
type noFinal struct{}

func (w *walker) command(c *parse.CommandNode, dot, final any) any {
	id, ok := c.Args[0].(*parse.IdentifierNode)
	if !ok {
		if _, none := final.(noFinal); !none {
			fallback()
		}
		return w.arg(c.Args[0], dot)
	}
	args := c.Args[1:]
	name := id.Ident
	if name == "or" || name == "and" {
		if len(args) == 0 {
			fallback()
		}
		var v any
		for _, a := range args {
			v = w.arg(a, dot)
			if truth(v) == (name == "or") {
				return v
			}
		}
		return v
	}
	vals := make([]any, 0, len(args)+1)
	for _, a := range args {
		vals = append(vals, w.arg(a, dot))
	}
	if _, none := final.(noFinal); !none {
		vals = append(vals, final)
	}
	if n := helperArity[name]; n >= 0 && len(vals) != n {
		fallback()
	}
	return w.call(name, vals)
}

func (w *walker) arg(a parse.Node, dot any) any {
	switch n := a.(type) {
	case *parse.DotNode:
		if _, root := dot.(rootDot); root {
			fallback()
		}
		return dot
	case *parse.StringNode:
		return n.Text
	case *parse.BoolNode:
		return n.True
	case *parse.NumberNode:
		return int(n.Int64)
	case *parse.FieldNode:
		if _, root := dot.(rootDot); !root {
			fallback()
		}
		if n.Ident[0] == "ID" {
			return w.d.ID
		}
		return w.d.Index
	case *parse.PipeNode:
		return w.pipe(n, dot)
	case *parse.IdentifierNode:
		return w.command(&parse.CommandNode{Args: []parse.Node{n}}, dot, noFinal{})
	}
	fallback()
	return nil
}

// call runs a helper or builtin on values of the types it takes.
func (w *walker) call(name string, vals []any) any {
	str := func(i int) string {
		s, ok := vals[i].(string)
		if !ok {
			fallback()
		}
		return s
	}
	switch name {
	case "get":
		v, ok := w.rec.Lookup(str(0))
		if !ok || v == nil {
			return ""
		}
		return v
	case "field":
		v, ok := w.rec.Lookup(str(0))
		if !ok {
			fallback() // the error is text/template's to word
		}
		if v == nil {
			return ""
		}
		return v
	case "list":
		return list(w.rec, str(0))
	case "at":
		got, ok := record.Lookup(vals[0], str(1))
		if !ok || got == nil {
			return ""
		}
		return got
	case "join":
		return join(str(0), vals[1])
	case "truncate":
		n, ok := vals[0].(int)
		if !ok {
			fallback()
		}
		return truncate(n, vals[1])
	case "not":
		return !truth(vals[0])
	case "print", "printf":
		for _, v := range vals {
			switch v.(type) {
			case string, json.Number, bool, int, int64:
			default:
				fallback() // fmt prints other values through reflection; leave them
			}
		}
		if name == "print" {
			return fmt.Sprint(vals...)
		}
		if len(vals) == 0 {
			fallback()
		}
		return fmt.Sprintf(str(0), vals[1:]...)
	}
	fallback()
	return nil
}
