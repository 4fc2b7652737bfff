package report

import (
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// node is an element of the page, parsed loosely with encoding/xml's HTML settings.
type node struct {
	name     string
	attr     map[string]string
	children []*node
	text     string // character data, for text nodes (name "#text")
}

// parsePage parses page into a tree, failing the test when it is not well-formed enough to parse.
func parsePage(tb testing.TB, page string) *node {
	tb.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	root := &node{name: "#root"}
	stack := []*node{root}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("the page does not parse: %v", err)
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: strings.ToLower(t.Name.Local), attr: map[string]string{}}
			for _, a := range t.Attr {
				n.attr[strings.ToLower(a.Name.Local)] = a.Value
			}
			top.children = append(top.children, n)
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			top.children = append(top.children, &node{name: "#text", text: string(t)})
		}
	}
	if len(stack) != 1 {
		tb.Fatalf("the page leaves %d elements open", len(stack)-1)
	}
	return root
}

// all returns the descendants of n (n included) for which keep is true, in document order.
func (n *node) all(keep func(*node) bool) []*node {
	var out []*node
	var walk func(*node)
	walk = func(m *node) {
		if keep(m) {
			out = append(out, m)
		}
		for _, c := range m.children {
			walk(c)
		}
	}
	walk(n)
	return out
}

// byID returns the element with the given id, or nil.
func (n *node) byID(id string) *node {
	found := n.all(func(m *node) bool { return m.attr["id"] == id })
	if len(found) == 0 {
		return nil
	}
	return found[0]
}

// withClass returns the elements whose class list holds class.
func (n *node) withClass(name, class string) []*node {
	return n.all(func(m *node) bool {
		return (name == "" || m.name == name) && slices.Contains(strings.Fields(m.attr["class"]), class)
	})
}

// allText returns the text of n and its descendants, spaces collapsed.
func (n *node) allText() string {
	var sb strings.Builder
	var walk func(*node)
	walk = func(m *node) {
		if m.name == "#text" {
			sb.WriteString(m.text)
			sb.WriteByte(' ')
		}
		for _, c := range m.children {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(sb.String()), " ")
}

// child returns the first direct child named name, or nil.
func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// barCharts returns, per chart title, its bars' tooltips ("value: count (pct)").
func barCharts(root *node) map[string][]string {
	out := map[string][]string{}
	for _, fig := range root.withClass("figure", "chart") {
		cap := fig.child("figcaption")
		if cap == nil || cap.child("b") == nil {
			continue
		}
		title := cap.child("b").allText()
		for _, g := range fig.withClass("g", "bar") {
			if t := g.child("title"); t != nil {
				out[title] = append(out[title], t.allText())
			}
		}
	}
	return out
}
