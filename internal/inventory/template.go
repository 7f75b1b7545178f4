package inventory

import (
	"net/url"
	"strings"
	"sync"
)

// Limits and thresholds of path templating.
const (
	// DefaultMinDistinct is how many distinct word-like values one position
	// under one prefix must show before it becomes a parameter. Resource
	// collections rarely have ten siblings that are all leaves hit once.
	DefaultMinDistinct = 10

	// defaultMaxChildren caps the literal children of one learned node.
	// Beyond it the position is collapsed into a parameter whatever the
	// statistics say: no real API has hundreds of sibling resource names,
	// and the cap keeps a high-cardinality position from growing the trie.
	defaultMaxChildren = 256

	// defaultMaxNodes caps the learned trie as a whole (about 100 bytes a
	// node plus its map entry: some 20 MiB at the cap). When it is reached,
	// the node being extended is collapsed, which frees its value children.
	defaultMaxNodes = 100_000

	// maxSegments bounds how deep learning goes; deeper segments are still
	// templated by their own class. Real APIs nest a handful of levels.
	maxSegments = 64

	// maxParamName bounds a derived parameter name; a longer one becomes
	// "id".
	maxParamName = 48

	// warmupFactor: statistical collapse needs at least warmupFactor *
	// MinDistinct observations of word values at the position. Early on, a
	// fixed set of K resources each hit once or twice looks exactly like
	// values; after 5 * MinDistinct hits, up to about 3 * MinDistinct
	// resources have each been seen more than once on average, while real
	// values keep arriving unseen.
	warmupFactor = 5

	// maxPrefixes bounds the id prefixes remembered per position; one
	// resource has one or two.
	maxPrefixes = 8

	// splitBuf is the stack capacity for a path's segments.
	splitBuf = 16
)

// TemplaterOptions configures a Templater. The zero value is usable.
type TemplaterOptions struct {
	// Hints are configured templates ("/customers/{id}") that win over
	// learning, like spec paths. Invalid ones are ignored; validate them
	// with CheckTemplate first.
	Hints []string
	// MinDistinct is how many distinct word-like values at one position
	// under one prefix make it a parameter; 0 means DefaultMinDistinct.
	// It is necessary, not sufficient: most of those values must also be
	// rare (seen once), which tells values from a fixed set of resources.
	MinDistinct int
	// MaxChildren caps the literal children of one position; 0 means 256.
	MaxChildren int
	// MaxNodes caps the learned trie; 0 means 100,000.
	MaxNodes int
}

// Templater turns concrete request paths into path templates. It knows
// templates from specs and hints, and learns the rest from traffic: obvious
// ids become parameters at once, word-like segments only when one position
// shows many distinct, rarely repeated values. It is safe for concurrent
// use and memory-bounded.
type Templater struct {
	mu          sync.RWMutex
	minDistinct int
	maxChildren int
	maxNodes    int

	known *knownNode
	root  *node
	nodes int
	// gen counts collapses: templates of already seen paths may have
	// changed when it moves.
	gen uint64
}

// node is one position of the learned trie.
type node struct {
	lit   map[string]*node
	param *node
	hits  uint64
	// collapsed: word-like values at this position are parameters; the
	// literal children left are collections (they have a parameter child)
	// and versions.
	collapsed bool
	// valueKey: this node is a literal child whose segment is word-like.
	valueKey bool
	// counted: this node is included in its parent's value statistics
	// (valueKey and no parameter child).
	counted bool
	// prefixes are the prefixes ("cus_", "txn-") of prefixed ids seen at
	// this position: a segment with one of them is a value even when its
	// body alone does not look random ("cus_vbFzkebgnsdnMS").
	prefixes []string
	// Statistics over counted children: distinct, seen once, total hits.
	vDistinct, vSingles int
	vHits               uint64
}

// NewTemplater returns a Templater with the hints of o.
func NewTemplater(o TemplaterOptions) *Templater {
	t := &Templater{
		minDistinct: o.MinDistinct,
		maxChildren: o.MaxChildren,
		maxNodes:    o.MaxNodes,
		known:       &knownNode{},
		root:        &node{},
		nodes:       1,
	}
	if t.minDistinct <= 0 {
		t.minDistinct = DefaultMinDistinct
	}
	if t.maxChildren <= 0 {
		t.maxChildren = defaultMaxChildren
	}
	if t.maxNodes <= 0 {
		t.maxNodes = defaultMaxNodes
	}
	for _, h := range o.Hints {
		_ = t.addKnown(h, prioHint)
	}
	return t
}

// Observe learns from one request path (without the query string). The
// method is accepted for symmetry with the inventory's key; templates are
// learned per path, whatever the method.
func (t *Templater) Observe(method, path string) {
	_ = method
	var buf [splitBuf]string
	segs := splitPath(path, buf[:0])
	t.mu.Lock()
	t.observeLocked(segs)
	t.mu.Unlock()
}

// Template returns the template of a concrete path and its parameter
// names in order. The template has exactly the segments of path (no
// trailing slash is added or removed), and Template is idempotent on its
// own output.
func (t *Templater) Template(path string) (tmpl string, params []string) {
	var buf [splitBuf]string
	segs := splitPath(path, buf[:0])
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.templateLocked(segs)
}

// learn observes path and returns its template, under one lock: the
// inventory's ingest path.
func (t *Templater) learn(path string) (tmpl string, params []string) {
	var buf [splitBuf]string
	segs := splitPath(path, buf[:0])
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeLocked(segs)
	return t.templateLocked(segs)
}

// generation returns the collapse counter.
func (t *Templater) generation() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.gen
}

// splitPath splits path on '/' like strings.Split, into buf.
func splitPath(path string, buf []string) []string {
	for {
		i := strings.IndexByte(path, '/')
		if i < 0 {
			return append(buf, path)
		}
		buf = append(buf, path[:i])
		path = path[i+1:]
	}
}

// templateLocked computes the template of segs; t.mu is held.
func (t *Templater) templateLocked(segs []string) (string, []string) {
	if len(segs) > 1 && segs[0] == "" {
		if l := t.known.match(segs[1:]); l != nil {
			return l.tmpl, append([]string(nil), l.params...)
		}
	}
	var (
		b        strings.Builder
		params   []string
		reserved []string
		n        = t.root
		prevLit  string
		prevWord bool
	)
	for _, seg := range segs {
		if isTemplateSegment(seg) {
			reserved = append(reserved, seg[1:len(seg)-1])
		}
	}
	for i, seg := range segs {
		if i > 0 {
			b.WriteByte('/')
		}
		cls := Classify(seg)
		param := false
		switch cls {
		case ClassTemplate, ClassID:
			param = true
		case ClassEmpty, ClassVersion:
			if n != nil {
				n = n.lit[seg]
			}
		default:
			if n != nil {
				c := n.lit[seg]
				switch {
				case (c == nil || c.param == nil) && n.hasPrefix(seg):
					param = true
				case c != nil:
					n = c
				case n.collapsed:
					param = true
				default:
					n = nil
				}
			}
		}
		if !param {
			b.WriteString(seg)
			prevLit, prevWord = seg, cls == ClassWord || cls == ClassOther
			continue
		}
		if n != nil {
			n = n.param
		}
		var name string
		if cls == ClassTemplate {
			name = seg[1 : len(seg)-1]
		} else {
			name = uniqueName(deriveName(prevLit, prevWord), params, reserved)
		}
		params = append(params, name)
		b.WriteByte('{')
		b.WriteString(name)
		b.WriteByte('}')
		prevLit, prevWord = "", false
	}
	return b.String(), params
}

// observeLocked learns from segs; t.mu is held for writing.
func (t *Templater) observeLocked(segs []string) {
	if len(segs) > maxSegments {
		segs = segs[:maxSegments]
	}
	var parent *node
	n := t.root
	n.hits++
	for _, seg := range segs {
		c := t.step(n, seg)
		// n may have gained a parameter child: it is a collection now.
		if parent != nil && n.counted && n.param != nil {
			parent.uncount(n)
		}
		if c == nil {
			return
		}
		parent, n = n, c
	}
}

// step records seg below n and returns the child it went to (nil when the
// node budget stops learning).
func (t *Templater) step(n *node, seg string) *node {
	switch cls := Classify(seg); cls {
	case ClassTemplate:
		return t.paramChild(n)
	case ClassID:
		if p, ok := idPrefix(seg); ok {
			t.learnPrefix(n, p)
		}
		return t.paramChild(n)
	case ClassEmpty, ClassVersion:
		c := n.lit[seg]
		if c == nil {
			if t.nodes >= t.maxNodes {
				return nil
			}
			c = t.newLit(n, seg, false)
		}
		c.hits++
		return c
	}
	c := n.lit[seg]
	if (c == nil || c.param == nil) && n.hasPrefix(seg) {
		return t.paramChild(n) // shaped like the ids seen here
	}
	if c != nil {
		c.hits++
		if c.counted {
			n.vHits++
			if c.hits == 2 {
				n.vSingles--
			}
			if t.maybeCollapse(n) && n.lit[seg] == nil {
				return n.param // merged: its hit is counted there
			}
		}
		return c
	}
	if !n.collapsed && (len(n.lit) >= t.maxChildren || t.nodes >= t.maxNodes) {
		t.collapse(n)
	}
	if n.collapsed {
		return t.paramChild(n)
	}
	c = t.newLit(n, seg, true)
	c.hits = 1
	c.counted = true
	n.vDistinct++
	n.vSingles++
	n.vHits++
	if t.maybeCollapse(n) {
		return n.param
	}
	return c
}

func (t *Templater) newLit(n *node, seg string, valueKey bool) *node {
	if n.lit == nil {
		n.lit = map[string]*node{}
	}
	c := &node{valueKey: valueKey}
	n.lit[seg] = c
	t.nodes++
	return c
}

// paramChild returns n's parameter child, creating it, and counts a hit.
func (t *Templater) paramChild(n *node) *node {
	if n.param == nil {
		if t.nodes >= t.maxNodes {
			return nil
		}
		n.param = &node{}
		t.nodes++
	}
	n.param.hits++
	return n.param
}

// uncount removes child c from n's value statistics (c became a collection).
func (n *node) uncount(c *node) {
	n.vDistinct--
	n.vHits -= c.hits
	if c.hits == 1 {
		n.vSingles--
	}
	c.counted = false
}

// recount recomputes n's value statistics from its children.
func (n *node) recount() {
	n.vDistinct, n.vSingles, n.vHits = 0, 0, 0
	for _, c := range n.lit {
		c.counted = c.valueKey && c.param == nil
		if !c.counted {
			continue
		}
		n.vDistinct++
		n.vHits += c.hits
		if c.hits == 1 {
			n.vSingles++
		}
	}
}

// maybeCollapse collapses n when its word values look like values: at
// least minDistinct of them, at least half seen once, after a warm-up.
func (t *Templater) maybeCollapse(n *node) bool {
	if n.collapsed || n.vDistinct < t.minDistinct || 2*n.vSingles < n.vDistinct ||
		n.vHits < uint64(warmupFactor*t.minDistinct) {
		return false
	}
	t.collapse(n)
	return true
}

// collapse turns n's word values into its parameter: their subtrees are
// merged into the parameter child; collections and versions stay literal.
func (t *Templater) collapse(n *node) {
	for k, c := range n.lit {
		if !c.valueKey || c.param != nil {
			continue
		}
		delete(n.lit, k)
		if n.param == nil {
			n.param = c
			c.valueKey, c.counted = false, false
			continue
		}
		t.merge(n.param, c)
	}
	n.collapsed = true
	n.recount()
	t.gen++
}

// merge adds src's subtree into dst; src is dropped.
func (t *Templater) merge(dst, src *node) {
	t.nodes-- // src itself
	dst.hits += src.hits
	dst.collapsed = dst.collapsed || src.collapsed
	for k, c := range src.lit {
		if d := dst.lit[k]; d != nil {
			t.merge(d, c)
			continue
		}
		if dst.lit == nil {
			dst.lit = map[string]*node{}
		}
		dst.lit[k] = c
	}
	if src.param != nil {
		if dst.param == nil {
			dst.param = src.param
		} else {
			t.merge(dst.param, src.param)
		}
	}
	dst.recount()
	if dst.collapsed {
		// Word values merged under a collapsed position are values too.
		for k, c := range dst.lit {
			if c.counted {
				delete(dst.lit, k)
				if dst.param == nil {
					dst.param = c
					c.valueKey, c.counted = false, false
				} else {
					t.merge(dst.param, c)
				}
			}
		}
		dst.recount()
	} else {
		t.maybeCollapse(dst)
	}
}

// idPrefix returns the prefix of a prefixed id, separator included
// ("cus_" of "cus_NffrFeUfNV2Hib").
func idPrefix(seg string) (string, bool) {
	if !isPrefixedID(seg) {
		return "", false
	}
	p := 0
	for isAlpha(seg[p]) {
		p++
	}
	return seg[:p+1], true
}

// hasPrefix reports whether seg is one of the id prefixes seen at n
// followed by at least minPrefixedRest alphanumerics.
func (n *node) hasPrefix(seg string) bool {
	for _, p := range n.prefixes {
		if len(seg) < len(p)+minPrefixedRest || !strings.HasPrefix(seg, p) {
			continue
		}
		body := seg[len(p):]
		ok := true
		for i := 0; i < len(body) && ok; i++ {
			ok = isAlnum(body[i])
		}
		if ok {
			return true
		}
	}
	return false
}

// learnPrefix remembers an id prefix at n and moves literal children
// that carry it (values seen before the prefix was known) into the
// parameter.
func (t *Templater) learnPrefix(n *node, p string) {
	for _, q := range n.prefixes {
		if q == p {
			return
		}
	}
	if len(n.prefixes) >= maxPrefixes {
		return
	}
	n.prefixes = append(n.prefixes, p)
	moved := false
	for k, c := range n.lit {
		if c.param != nil || !c.valueKey || !n.hasPrefix(k) {
			continue
		}
		delete(n.lit, k)
		moved = true
		if n.param == nil {
			n.param = c
			c.valueKey, c.counted = false, false
			continue
		}
		t.merge(n.param, c)
	}
	if moved {
		n.recount()
		t.gen++
	}
}

// decodeSegment percent-decodes seg; a segment that does not decode is
// kept as written.
func decodeSegment(seg string) string {
	if strings.IndexByte(seg, '%') < 0 {
		return seg
	}
	if dec, err := url.PathUnescape(seg); err == nil {
		return dec
	}
	return seg
}

// trimTrailingSlash drops one trailing slash, except from "/".
func trimTrailingSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}
