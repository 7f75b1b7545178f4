package config

import (
	"fmt"
	"strings"
)

// Error is one configuration problem, located in the file.
type Error struct {
	File string
	Line int
	Path string // key path such as apis[1].upstream.url; may be empty
	Msg  string
}

func (e Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Path != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Errors is every problem found in one config, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// positions maps key paths to the line they were written on.
type positions map[string]int

// fieldErr is a validation problem before it is located.
type fieldErr struct {
	path string
	msg  string
}

// line returns the line of path, or of its closest written ancestor.
func (p positions) line(path string) int {
	for path != "" {
		if n, ok := p[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// pathAt returns the key path written on line n when exactly one leaf
// path is there; on a flow mapping with several keys it cannot tell which
// one failed, and returns "" rather than guess.
func (p positions) pathAt(n int) string {
	var onLine []string
	for path, line := range p {
		if line == n {
			onLine = append(onLine, path)
		}
	}
	leaf := ""
	for _, a := range onLine {
		isLeaf := true
		for _, b := range onLine {
			if b != a && strings.HasPrefix(b, a) {
				isLeaf = false
				break
			}
		}
		if isLeaf {
			if leaf != "" {
				return ""
			}
			leaf = a
		}
	}
	return leaf
}

// errAt locates a problem at a key path in this config's file.
func (c *Config) errAt(path, msg string) Error {
	return Error{File: c.display(), Line: c.pos.line(path), Path: path, Msg: msg}
}

// Errorf builds a located error for a problem found after loading (a
// missing certificate, a spec that fails to parse), so that every layer
// reports config problems the same way.
func (c *Config) Errorf(path, format string, args ...any) Error {
	return c.errAt(path, fmt.Sprintf(format, args...))
}

func (c *Config) display() string {
	if c.File == "" {
		return "config"
	}
	return relToWD(c.File)
}
