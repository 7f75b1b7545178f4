package spec

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

const (
	// maxTemplateSegments bounds the depth of a path template, and with it the
	// depth of the trie and of the matcher's recursion. Real APIs nest a
	// handful of levels; 64 is far beyond any of them.
	maxTemplateSegments = 64

	// maxParamsPerSegment bounds the parameters in one template segment
	// (e.g. "{from}..{to}"), keeping the in-segment matcher a short loop.
	maxParamsPerSegment = 8
)

// MatchStatus is the outcome of Router.Match.
type MatchStatus uint8

// Match outcomes.
const (
	// NotFound: no path template matches the request path.
	NotFound MatchStatus = iota
	// Matched: Match.Op is the operation and Match.Values its parameters.
	Matched
	// MethodNotAllowed: a path template matches, but not for this method;
	// Match.Allowed lists the methods that would match.
	MethodNotAllowed
)

// String returns the status name.
func (s MatchStatus) String() string {
	switch s {
	case Matched:
		return "Matched"
	case MethodNotAllowed:
		return "MethodNotAllowed"
	default:
		return "NotFound"
	}
}

// Match is the result of Router.Match.
type Match struct {
	Op *Operation
	// Values holds the percent-decoded path parameter values in the order
	// of Op.PathParams. It is appended to the caller's buffer.
	Values []string
	Status MatchStatus
	// Allowed lists the methods for the matched path when Status is
	// MethodNotAllowed (HEAD included when GET is declared), sorted. It is
	// shared by all callers and must not be modified.
	Allowed []string
}

// Router matches request paths to a document's operations. It is immutable
// after NewRouter and safe for concurrent use.
type Router struct {
	root      *node
	basePaths []string // longest first
	ops       []*Operation
}

// node is one position in the segment trie.
type node struct {
	static  map[string]*node // literal segment (unescaped) -> child
	mixed   []*mixedEdge     // literal and parameter parts; longest literal first
	param   *node            // a segment that is exactly one parameter
	methods []methodOp       // operations ending here, sorted by method
	allowed []string         // methods for a MethodNotAllowed answer
}

type methodOp struct {
	method string
	op     *Operation
}

// mixedEdge is a template segment like "{fileID}.json" or "v{major}.{minor}":
// lits has one more element than the segment has parameters, lits[0] before
// the first parameter and lits[len-1] after the last.
type mixedEdge struct {
	lits   []string
	litLen int
	child  *node
}

// NewRouter builds a router over doc's operations. It fails when two
// templates cannot be told apart for the same method (for example
// "/a/{x}" and "/a/{y}", or "/a" and "/a/"), or a template is malformed.
func NewRouter(doc *Document) (*Router, error) {
	if doc == nil {
		return nil, errors.New("new router: nil document")
	}
	r := &Router{root: &node{}, ops: doc.Operations}
	r.basePaths = append([]string(nil), doc.BasePaths...)
	if len(r.basePaths) == 0 {
		r.basePaths = []string{""}
	}
	sort.SliceStable(r.basePaths, func(i, j int) bool { return len(r.basePaths[i]) > len(r.basePaths[j]) })

	var errs []error
	for _, op := range doc.Operations {
		if err := r.insert(op); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("new router for %s: %w", doc.Path, errors.Join(errs...))
	}
	r.root.finish()
	return r, nil
}

// Operations returns the operations the router matches, in document order.
func (r *Router) Operations() []*Operation { return r.ops }

func (r *Router) insert(op *Operation) error {
	tmpl := op.Path
	if !strings.HasPrefix(tmpl, "/") {
		return fmt.Errorf("operation %q: path template must start with '/'", op.Key)
	}
	trimmed := tmpl[1:]
	if len(trimmed) > 0 && trimmed[len(trimmed)-1] == '/' {
		trimmed = trimmed[:len(trimmed)-1] // "/accounts/" is "/accounts"
	}
	n := r.root
	if trimmed != "" {
		segs := strings.Split(trimmed, "/")
		if len(segs) > maxTemplateSegments {
			return fmt.Errorf("operation %q: more than %d path segments", op.Key, maxTemplateSegments)
		}
		for _, seg := range segs {
			next, err := n.child(seg)
			if err != nil {
				return fmt.Errorf("operation %q: segment %q: %w", op.Key, seg, err)
			}
			n = next
		}
	}
	for _, m := range n.methods {
		if m.method == op.Method {
			return fmt.Errorf("operation %q cannot be told apart from %q", op.Key, m.op.Key)
		}
	}
	n.methods = append(n.methods, methodOp{method: op.Method, op: op})
	return nil
}

// child returns (creating it if needed) the child of n for template segment seg.
func (n *node) child(seg string) (*node, error) {
	if seg == "" {
		return nil, errors.New("empty segment ('//') in path template")
	}
	if !strings.ContainsAny(seg, "{}") {
		seg = decodeLiteral(seg)
		if n.static == nil {
			n.static = map[string]*node{}
		}
		c := n.static[seg]
		if c == nil {
			c = &node{}
			n.static[seg] = c
		}
		return c, nil
	}
	lits, err := splitSegment(seg)
	if err != nil {
		return nil, err
	}
	if len(lits) == 2 && lits[0] == "" && lits[1] == "" {
		if n.param == nil {
			n.param = &node{}
		}
		return n.param, nil
	}
	for _, e := range n.mixed {
		if equalStrings(e.lits, lits) {
			return e.child, nil
		}
	}
	e := &mixedEdge{lits: lits, child: &node{}}
	for _, l := range lits {
		e.litLen += len(l)
	}
	n.mixed = append(n.mixed, e)
	return e.child, nil
}

// splitSegment splits a template segment into its literal parts around the
// parameters: "{a}.{b}.json" -> ["", ".", ".json"].
func splitSegment(seg string) ([]string, error) {
	var lits []string
	rest := seg
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return nil, errors.New("unbalanced '}'")
			}
			lits = append(lits, rest)
			break
		}
		lit := rest[:i]
		if strings.IndexByte(lit, '}') >= 0 {
			return nil, errors.New("unbalanced '}'")
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] != '}' {
			return nil, errors.New("unbalanced '{'")
		}
		if j == 0 {
			return nil, errors.New("empty parameter name")
		}
		if len(lits) > 0 && lit == "" {
			return nil, errors.New("adjacent parameters cannot be told apart")
		}
		lits = append(lits, lit)
		rest = rest[i+1+j+1:]
	}
	for i := range lits {
		lits[i] = decodeLiteral(lits[i])
	}
	if len(lits)-1 > maxParamsPerSegment {
		return nil, fmt.Errorf("more than %d parameters in one segment", maxParamsPerSegment)
	}
	return lits, nil
}

// decodeLiteral percent-decodes a literal part of a template, as request
// segments are decoded before comparison; a literal that does not decode is
// kept as written.
func decodeLiteral(lit string) string {
	if strings.IndexByte(lit, '%') < 0 {
		return lit
	}
	if dec, err := url.PathUnescape(lit); err == nil {
		return dec
	}
	return lit
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

// finish orders mixed edges (longest literal first) and precomputes the
// Allowed lists, recursively.
func (n *node) finish() {
	sort.SliceStable(n.mixed, func(i, j int) bool { return n.mixed[i].litLen > n.mixed[j].litLen })
	sort.Slice(n.methods, func(i, j int) bool { return n.methods[i].method < n.methods[j].method })
	if len(n.methods) > 0 {
		hasGet, hasHead := false, false
		for _, m := range n.methods {
			n.allowed = append(n.allowed, m.method)
			hasGet = hasGet || m.method == http.MethodGet
			hasHead = hasHead || m.method == http.MethodHead
		}
		if hasGet && !hasHead {
			n.allowed = append(n.allowed, http.MethodHead)
		}
		sort.Strings(n.allowed)
	}
	for _, c := range n.static {
		c.finish()
	}
	for _, e := range n.mixed {
		e.child.finish()
	}
	if n.param != nil {
		n.param.finish()
	}
}

// Match finds the operation for method and the request's escaped path
// (r.URL.EscapedPath(), the full request path including any base path).
// Parameter values are appended to buf[:0]; with a buffer of sufficient
// capacity a hit on a path without percent-escapes does not allocate.
//
// Segments are split on '/' in the escaped form, so "%2F" stays inside a
// segment. Each segment is then percent-decoded before it is compared, for
// literals as for parameters: "/accounts/%63urrent" is "/accounts/current",
// so an escaped spelling cannot dodge a rule written for a literal path. A
// segment that does not decode matches nothing.
//
// Each base path that is a segment-wise prefix of the path is tried, longest
// first. Literal segments win over parameters, and a segment with literal
// parts over a bare parameter, with backtracking when a branch leads nowhere.
// The path decides first: when the most specific template matching the path
// lacks the method, the answer is MethodNotAllowed, not a less specific
// template. HEAD falls back to GET when no HEAD operation is declared.
func (r *Router) Match(method, escapedPath string, buf []string) Match {
	vals := buf[:0]
	if escapedPath == "" {
		escapedPath = "/"
	}
	if escapedPath[0] != '/' {
		return Match{Values: vals}
	}
	// One trailing slash is tolerated: "/accounts/" is "/accounts". A
	// doubled one ("/accounts//", "//") is an empty segment and never matches.
	if l := len(escapedPath); l > 1 && escapedPath[l-1] == '/' && escapedPath[l-2] != '/' {
		escapedPath = escapedPath[:len(escapedPath)-1]
	}
	for _, bp := range r.basePaths {
		rest, ok := cutBase(escapedPath, bp)
		if !ok {
			continue
		}
		n, v := r.root.lookup(rest, vals)
		if n == nil {
			continue
		}
		vals = v
		for _, m := range n.methods {
			if m.method == method {
				return Match{Op: m.op, Values: vals, Status: Matched}
			}
		}
		if method == http.MethodHead {
			for _, m := range n.methods {
				if m.method == http.MethodGet {
					return Match{Op: m.op, Values: vals, Status: Matched}
				}
			}
		}
		return Match{Values: vals[:0], Status: MethodNotAllowed, Allowed: n.allowed}
	}
	return Match{Values: vals[:0]}
}

// cutBase strips base path bp from p when bp is a segment-wise prefix of p,
// returning the rest ("" or starting with '/').
func cutBase(p, bp string) (string, bool) {
	if bp == "" {
		if p == "/" {
			return "", true
		}
		return p, true
	}
	if !strings.HasPrefix(p, bp) {
		return "", false
	}
	rest := p[len(bp):]
	if rest == "" || rest == "/" {
		return "", true
	}
	if rest[0] != '/' {
		return "", false
	}
	return rest, true
}

// lookup matches p ("" or "/seg/seg...") below n and returns the node where a
// template with operations ends, with the values appended to vals; nil when
// nothing matches. A trie node is visited at most once per call, so the work
// is bounded by the trie size whatever the request.
func (n *node) lookup(p string, vals []string) (*node, []string) {
	if p == "" {
		if len(n.methods) > 0 {
			return n, vals
		}
		return nil, vals
	}
	// p starts with '/'.
	seg, rest := p[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, rest = seg[:i], seg[i:]
	}
	if seg == "" {
		return nil, vals // "//" is not collapsed
	}
	if strings.IndexByte(seg, '%') >= 0 {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, vals
		}
		seg = dec
	}
	if c := n.static[seg]; c != nil {
		if found, v := c.lookup(rest, vals); found != nil {
			return found, v
		}
	}
	for _, e := range n.mixed {
		v, ok := e.match(seg, vals)
		if !ok {
			continue
		}
		if found, v2 := e.child.lookup(rest, v); found != nil {
			return found, v2
		}
	}
	if n.param != nil {
		if found, v := n.param.lookup(rest, append(vals, seg)); found != nil {
			return found, v
		}
	}
	return nil, vals
}

// match matches a decoded segment against the edge's literal parts, appending
// the parameter values (each non-empty) to vals. Middle literals are matched
// at their first occurrence after a non-empty value.
func (e *mixedEdge) match(seg string, vals []string) ([]string, bool) {
	nParams := len(e.lits) - 1
	first, last := e.lits[0], e.lits[nParams]
	if len(seg) < e.litLen+nParams || !strings.HasPrefix(seg, first) || !strings.HasSuffix(seg, last) {
		return vals, false
	}
	rest := seg[len(first) : len(seg)-len(last)]
	out := vals
	for i := 1; i < nParams; i++ {
		lit := e.lits[i]
		if len(rest) < 1 {
			return vals, false
		}
		j := strings.Index(rest[1:], lit)
		if j < 0 {
			return vals, false
		}
		out = append(out, rest[:j+1])
		rest = rest[j+1+len(lit):]
	}
	if rest == "" {
		return vals, false
	}
	return append(out, rest), true
}
