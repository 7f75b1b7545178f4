package inventory

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/spec"
)

// Priorities of known templates: a spec path wins over a hint at the same
// structural position.
const (
	prioHint = 1
	prioSpec = 2
)

// knownNode is one position of the trie of spec and hint templates.
type knownNode struct {
	lit   map[string]*knownNode
	param *knownNode
	mixed []*knownMixed
	leaf  *knownLeaf
}

// knownMixed is a template segment with literal parts, like "{id}.json":
// lits has one more element than the segment has parameters.
type knownMixed struct {
	lits  []string
	child *knownNode
}

type knownLeaf struct {
	tmpl   string
	params []string
	prio   int
}

// CheckTemplate reports why tmpl cannot be used as a hint: it must start
// with '/', and braces must enclose non-empty names within one segment.
func CheckTemplate(tmpl string) error {
	if !strings.HasPrefix(tmpl, "/") {
		return fmt.Errorf("template %q: must start with '/'", tmpl)
	}
	for _, seg := range strings.Split(tmpl[1:], "/") {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		if _, _, err := splitTemplateSegment(seg); err != nil {
			return fmt.Errorf("template %q: segment %q: %w", tmpl, seg, err)
		}
	}
	return nil
}

// AddSpec adds every path of doc, under each of its base paths, as a known
// template: a path that matches one gets it, with the spec's parameter
// names, whatever was learned.
func (t *Templater) AddSpec(doc *spec.Document) {
	if doc == nil {
		return
	}
	bases := doc.BasePaths
	if len(bases) == 0 {
		bases = []string{""}
	}
	seen := map[string]bool{}
	for _, op := range doc.Operations {
		for _, b := range bases {
			full := b + op.Path
			if seen[full] {
				continue
			}
			seen[full] = true
			_ = t.addKnown(full, prioSpec)
		}
	}
}

// addKnown inserts a template into the known trie.
func (t *Templater) addKnown(tmpl string, prio int) error {
	if err := CheckTemplate(tmpl); err != nil {
		return err
	}
	tmpl = trimTrailingSlash(tmpl)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.known
	var params []string
	for i, seg := range strings.Split(tmpl, "/") {
		if i == 0 {
			continue // before the leading slash
		}
		if i > maxSegments {
			return fmt.Errorf("template %q: more than %d segments", tmpl, maxSegments)
		}
		switch {
		case isTemplateSegment(seg):
			params = append(params, seg[1:len(seg)-1])
			if n.param == nil {
				n.param = &knownNode{}
			}
			n = n.param
		case strings.ContainsAny(seg, "{}"):
			lits, names, _ := splitTemplateSegment(seg)
			params = append(params, names...)
			n = n.mixedChild(lits)
		default:
			key := decodeSegment(seg)
			if n.lit == nil {
				n.lit = map[string]*knownNode{}
			}
			c := n.lit[key]
			if c == nil {
				c = &knownNode{}
				n.lit[key] = c
			}
			n = c
		}
	}
	if n.leaf == nil || prio > n.leaf.prio {
		n.leaf = &knownLeaf{tmpl: tmpl, params: params, prio: prio}
	}
	return nil
}

func (n *knownNode) mixedChild(lits []string) *knownNode {
	for _, m := range n.mixed {
		if equalStrings(m.lits, lits) {
			return m.child
		}
	}
	m := &knownMixed{lits: lits, child: &knownNode{}}
	n.mixed = append(n.mixed, m)
	return m.child
}

// splitTemplateSegment splits "{a}.{b}.json" into literal parts
// ["", ".", ".json"] and names ["a", "b"].
func splitTemplateSegment(seg string) (lits, names []string, err error) {
	rest := seg
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return nil, nil, errors.New("unbalanced '}'")
			}
			lits = append(lits, rest)
			return lits, names, nil
		}
		lit := rest[:i]
		if strings.IndexByte(lit, '}') >= 0 {
			return nil, nil, errors.New("unbalanced '}'")
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] != '}' {
			return nil, nil, errors.New("unbalanced '{'")
		}
		if j == 0 {
			return nil, nil, errors.New("empty parameter name")
		}
		if len(lits) > 0 && lit == "" {
			return nil, nil, errors.New("adjacent parameters cannot be told apart")
		}
		lits = append(lits, lit)
		names = append(names, rest[i+1:i+1+j])
		rest = rest[i+1+j+1:]
	}
}

// match finds the known template for segs below n: literals first, then
// segments with literal parts, then bare parameters, backtracking. Each
// trie node sits at one depth, so it is visited at most once per call.
func (n *knownNode) match(segs []string) *knownLeaf {
	if len(segs) == 0 {
		return n.leaf
	}
	seg := segs[0]
	if n.lit != nil && !isTemplateSegment(seg) {
		if c := n.lit[decodeSegment(seg)]; c != nil {
			if l := c.match(segs[1:]); l != nil {
				return l
			}
		}
	}
	for _, m := range n.mixed {
		if matchMixed(m.lits, seg) {
			if l := m.child.match(segs[1:]); l != nil {
				return l
			}
		}
	}
	if n.param != nil && seg != "" {
		return n.param.match(segs[1:])
	}
	return nil
}

// matchMixed reports whether seg fits literal parts lits with a non-empty
// value for each parameter; middle literals match at their first
// occurrence after a non-empty value.
func matchMixed(lits []string, seg string) bool {
	nParams := len(lits) - 1
	first, last := lits[0], lits[nParams]
	if len(seg) < len(first)+len(last)+nParams || !strings.HasPrefix(seg, first) || !strings.HasSuffix(seg, last) {
		return false
	}
	rest := seg[len(first) : len(seg)-len(last)]
	for i := 1; i < nParams; i++ {
		if rest == "" {
			return false
		}
		j := strings.Index(rest[1:], lits[i])
		if j < 0 {
			return false
		}
		rest = rest[j+1+len(lits[i]):]
	}
	return rest != ""
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
