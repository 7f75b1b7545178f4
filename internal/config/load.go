package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, expands, decodes, defaults and validates the config file at
// path. On failure the error is an Errors value listing every problem with
// file:line.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, Errors{{File: path, Line: 1, Msg: fmt.Sprintf("file larger than %d bytes", MaxConfigBytes)}}
	}
	return Parse(data, abs, os.LookupEnv)
}

// Parse is Load for data already in memory. file names the source in
// messages and anchors relative paths; lookup resolves ${ENV} references.
func Parse(data []byte, file string, lookup func(string) (string, bool)) (*Config, error) {
	display := relToWD(file)
	l := &loader{file: display, lookup: lookup, pos: positions{}}
	cfg := &Config{File: file}

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{l.syntaxError(err)}
	}
	// A second document in the same file is almost always a mistake.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errs = append(l.errs, Error{File: display, Line: extra.Line, Msg: "more than one YAML document in the config file"})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != 0 && !(root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		if root.Kind != yaml.MappingNode {
			return nil, Errors{{File: display, Line: root.Line, Msg: "the config must be a YAML mapping of keys to values"}}
		}
		l.walk(root, reflect.TypeOf(Config{}), "")
		if err := root.Decode(cfg); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, Errors{l.syntaxError(err)}
			}
			walked := map[int]bool{}
			for _, e := range l.errs {
				walked[e.Line] = true
			}
			for _, msg := range te.Errors {
				e := l.typeError(msg)
				if walked[e.Line] {
					continue // the walk already said what is wrong on this line
				}
				l.errs = append(l.errs, e)
			}
		}
	}
	cfg.File = file
	cfg.pos = l.pos
	cfg.applyDefaults()
	cfg.resolvePaths()

	// Decode errors first, then semantic ones; a semantic complaint on a
	// line that already failed to decode is noise and is dropped.
	bad := map[int]bool{}
	for _, e := range l.errs {
		bad[e.Line] = true
	}
	errs := l.errs
	for _, fe := range cfg.validate() {
		e := cfg.errAt(fe.path, fe.msg)
		if bad[e.Line] && e.Line != 0 {
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, Errors(errs)
	}
	return cfg, nil
}

// loader walks the YAML tree before decoding: it records the line of every
// key path, rejects unknown keys, and expands ${ENV} in scalar values.
type loader struct {
	file   string
	lookup func(string) (string, bool)
	pos    positions
	errs   []Error
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func (l *loader) syntaxError(err error) Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Error{File: l.file, Line: n, Msg: "YAML syntax: " + m[2]}
	}
	return Error{File: l.file, Line: 1, Msg: "YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (l *loader) typeError(msg string) Error {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		text := m[2]
		// yaml.v3 says "cannot unmarshal !!str `abc` into int"; say it plainly.
		if strings.HasPrefix(text, "cannot unmarshal") {
			if i := strings.LastIndex(text, " into "); i > 0 {
				text = "wrong type: expected " + kindName(text[i+len(" into "):])
			}
		}
		return Error{File: l.file, Line: n, Path: l.pos.pathAt(n), Msg: text}
	}
	return Error{File: l.file, Line: 1, Msg: msg}
}

func kindName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "*int"):
		return "an integer"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	default:
		return "a mapping"
	}
}

// walk checks node against the Go type t (a struct, slice, pointer or
// scalar) at key path p.
func (l *loader) walk(n *yaml.Node, t reflect.Type, p string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, custom := reflect.New(t).Interface().(yaml.Unmarshaler); custom {
		l.expand(n)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				l.errs = append(l.errs, Error{File: l.file, Line: n.Line, Path: p, Msg: "expected a mapping of keys to values"})
			}
			return
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: check the merged mapping too
				l.walk(v, t, p)
				continue
			}
			kp := join(p, k.Value)
			if prev, dup := seen[k.Value]; dup {
				l.errs = append(l.errs, Error{File: l.file, Line: k.Line, Path: kp, Msg: fmt.Sprintf("duplicate key (first at line %d)", prev)})
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				l.errs = append(l.errs, Error{File: l.file, Line: k.Line, Path: kp, Msg: fmt.Sprintf("unknown key %q%s", clip(k.Value), suggest(k.Value, fields))})
				continue
			}
			l.pos[kp] = k.Line
			l.walk(v, ft, kp)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				l.errs = append(l.errs, Error{File: l.file, Line: n.Line, Path: p, Msg: "expected a list"})
			}
			return
		}
		for i, item := range n.Content {
			ip := p + "[" + strconv.Itoa(i) + "]"
			l.pos[ip] = item.Line
			l.walk(item, t.Elem(), ip)
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				kp := join(p, n.Content[i].Value)
				l.pos[kp] = n.Content[i].Line
				l.walk(n.Content[i+1], t.Elem(), kp)
			}
		}
	default:
		l.expand(n)
	}
}

// expand replaces ${NAME} and ${NAME:-default} in a scalar; $$ is a literal $.
func (l *loader) expand(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || !strings.Contains(n.Value, "$") {
		return
	}
	out, missing := expandEnv(n.Value, l.lookup)
	for _, name := range missing {
		l.errs = append(l.errs, Error{File: l.file, Line: n.Line, Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)})
	}
	if out != n.Value {
		n.Value = out
		if n.Style == 0 || n.Style == yaml.TaggedStyle {
			n.Tag = "" // let the expanded value resolve as a plain scalar (a number stays a number)
		}
	}
}

// expandEnv expands references and returns the names that were not set.
func expandEnv(s string, lookup func(string) (string, bool)) (string, []string) {
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String(), missing
			}
			ref := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(ref, ":-")
			if !validEnvName(name) {
				b.WriteString(s[i : i+3+end])
			} else if v, ok := lookup(name); ok && (v != "" || !hasDef) {
				b.WriteString(v)
			} else if hasDef {
				b.WriteString(def)
			} else {
				missing = append(missing, name)
			}
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), missing
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// yamlFields maps the yaml keys of struct t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() || name == "" {
			continue
		}
		m[name] = f.Type
	}
	return m
}

// suggest proposes the known key closest to an unknown one.
func suggest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(strings.ToLower(k), name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}
