// Package spec loads OpenAPI documents into a typed model of operations and
// matches request paths to those operations.
//
// It is shared by the gateway (route stage, request and response validation),
// the inventory, the posture scanner and the probe, so everything downstream
// names an operation the same way: its Key, "METHOD /template" as written in
// the spec (for example "GET /accounts/{AccountId}").
//
// Loading uses github.com/getkin/kin-openapi. OpenAPI 3.0 and 3.1 documents are
// read as they are; Swagger 2.0 documents are converted to OpenAPI 3 on load.
// $ref across local files is resolved; references to anything but a local file
// (http, https, ...) are refused, so loading a spec never reaches the network.
//
// Matching (Router) is the gateway's hot path: a segment trie with no
// regular expressions and no allocation on a hit beyond the caller's buffer.
package spec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

const (
	// maxSpecBytes bounds every file read while loading a spec (the root
	// document and each file reached through $ref). The largest real-world
	// specs we know of (cloud provider APIs) are a few MiB; 32 MiB leaves room
	// while keeping a hostile or mistaken file from exhausting memory.
	maxSpecBytes = 32 << 20

	// maxRefFiles bounds how many distinct files one load may read through
	// $ref. Multi-file specs use tens of files; the bound stops a hostile
	// document from walking the file system.
	maxRefFiles = 512

	// maxBasePaths bounds the base paths produced by expanding server URL
	// variables (defaults and every enum value, as a cartesian product). The
	// router tries each candidate base path on every request, so the list must
	// stay short.
	maxBasePaths = 64

	// maxErrorChain bounds the walk over a validation error's wrapped
	// errors when looking for a source line; the library nests a few levels
	// per document section, so this only guards against a cyclic chain.
	maxErrorChain = 1000

	// swaggerVersion is Document.Version for a converted Swagger 2.0 document.
	swaggerVersion = "2.0"
)

// RemoteRefError is returned (wrapped) when a spec refers to anything other
// than a local file, for example an http(s) URL. Loading a spec never reaches
// the network: a gateway must not depend on, or be steered towards, a remote
// host by the documents it loads. Callers branch on it with errors.As.
type RemoteRefError struct {
	URI string // the refused reference, credentials redacted
}

func (e *RemoteRefError) Error() string {
	return fmt.Sprintf("refusing $ref to %q: only local file references are allowed", e.URI)
}

// Document is a loaded, resolved and validated OpenAPI document.
type Document struct {
	Path       string // source file or location
	Version    string // "3.0.2", "3.1.0", "2.0" (converted)
	Title      string
	APIVersion string
	// BasePaths holds the path part of each server URL, with server variables
	// substituted by their defaults and by every enum value; "" when a server
	// has no path (or is "/"); deduplicated, in declaration order; at least
	// [""]. Base paths are in escaped form, without a trailing slash.
	BasePaths []string
	// Operations in deterministic order: by path template, then by method.
	Operations []*Operation
	// T is the resolved library document, for validators.
	T *openapi3.T

	byKey map[string]*Operation
}

// Operation is one method on one path template.
type Operation struct {
	ID     string // operationId or ""
	Method string // upper-case
	Path   string // template as written in the spec, e.g. /accounts/{AccountId}
	Key    string // "GET /accounts/{AccountId}": the name used everywhere in Bulwark
	// PathParams names the template's parameters in order of appearance.
	PathParams []string
	Deprecated bool
	Tags       []string
	// Security is the effective requirement list: the operation's own when it
	// sets one (an empty list means anonymous access), else the document's.
	Security []SecurityRequirement
	// SecurityExplicit is true when the operation sets security itself.
	SecurityExplicit bool
	Op               *openapi3.Operation
	PathItem         *openapi3.PathItem
}

// SecurityRequirement maps a security scheme name to the scopes required.
// One requirement is the AND of its schemes; a list of them is an OR. An
// empty requirement means anonymous access is allowed.
type SecurityRequirement map[string][]string

// Operation returns the operation named by key ("METHOD /template"), or nil.
// The method part is case-insensitive; the template must be as written in the
// spec.
func (d *Document) Operation(key string) *Operation {
	method, tmpl, ok := strings.Cut(strings.TrimSpace(key), " ")
	if !ok {
		return nil
	}
	k := strings.ToUpper(method) + " " + strings.TrimSpace(tmpl)
	if d.byKey != nil {
		return d.byKey[k]
	}
	for _, op := range d.Operations {
		if op.Key == k {
			return op
		}
	}
	return nil
}

// Load reads an OpenAPI 3.x or Swagger 2.0 document (YAML or JSON) from path,
// resolves $ref across local files, validates it and builds the model.
func Load(ctx context.Context, path string) (*Document, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", path, err)
	}
	return LoadData(ctx, data, path)
}

// LoadData is Load for a document already in memory (an embedded spec).
// location names the document in errors and is the base for relative $refs;
// when it is empty, references to other files are refused.
func LoadData(ctx context.Context, data []byte, location string) (*Document, error) {
	name := location
	if name == "" {
		name = "<memory>"
	}
	if len(data) > maxSpecBytes {
		return nil, fmt.Errorf("load spec %s: document is %d bytes, more than the %d byte limit", name, len(data), maxSpecBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load spec %s: %w", name, err)
	}
	t, version, err := parse(ctx, data, location)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load spec %s: %w", name, err)
	}
	doc, err := build(t, version, name)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", name, err)
	}
	return doc, nil
}

// parse decodes, resolves and validates data with kin-openapi. A panic inside
// the library on hostile input is turned into an error: a bad spec must fail a
// config reload, never crash a running gateway.
func parse(ctx context.Context, data []byte, location string) (t *openapi3.T, version string, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, version, err = nil, "", fmt.Errorf("malformed document (parser panic: %v)", r)
		}
	}()

	head, err := readHead(data)
	if err != nil {
		return nil, "", err
	}

	loader := newLoader(ctx, location)
	var loc *url.URL
	if location != "" {
		loc = &url.URL{Path: filepath.ToSlash(location)}
	}
	switch {
	case head.Swagger != nil:
		if s := *head.Swagger; s != swaggerVersion {
			return nil, "", fmt.Errorf("unsupported swagger version %q (want %q)", s, swaggerVersion)
		}
		var doc2 openapi2.T
		if err := openapi2.UnmarshalFromData(data, &doc2); err != nil {
			return nil, "", fmt.Errorf("parse swagger 2.0: %w", err)
		}
		t, err = openapi2conv.ToV3WithLoader(&doc2, loader, loc)
		if err != nil {
			return nil, "", fmt.Errorf("convert swagger 2.0: %w", err)
		}
		if t.Paths == nil {
			t.Paths = openapi3.NewPaths() // the converter drops an empty paths object, which 3.0 requires
		}
		version = swaggerVersion
	case head.OpenAPI != nil:
		s := *head.OpenAPI
		if !strings.HasPrefix(s, "3.") {
			return nil, "", fmt.Errorf("unsupported openapi version %q (want 3.x)", s)
		}
		if loc != nil {
			t, err = loader.LoadFromDataWithPath(data, loc)
		} else {
			t, err = loader.LoadFromData(data)
		}
		if err != nil {
			return nil, "", err
		}
		version = t.OpenAPI
	default:
		return nil, "", errors.New(`not an OpenAPI document: neither "openapi" nor "swagger" is set`)
	}

	if err := t.Validate(ctx, validationOptions()...); err != nil {
		if where := locate(ctx, data, location, version == swaggerVersion); where != "" {
			return nil, "", fmt.Errorf("%s: invalid document: %w", where, err)
		}
		return nil, "", fmt.Errorf("invalid document: %w", err)
	}
	return t, version, nil
}

// validationOptions are lenient enough for real-world specs: examples and
// defaults are often stale, and patterns are often written for ECMAScript
// regex engines. Request and response validation checks payloads later.
func validationOptions() []openapi3.ValidationOption {
	return []openapi3.ValidationOption{
		openapi3.DisableExamplesValidation(),
		openapi3.DisableSchemaDefaultsValidation(),
		openapi3.DisableSchemaPatternValidation(),
	}
}

// locate finds the source line of a validation error. Recording origins costs
// memory and time on every load, so it is done only after validation failed:
// the document is loaded again with origins and validated again, and the
// deepest origin on the error chain is reported as "line N" (or "file:line N"
// when it lies in another file). It returns "" when no line is known, which
// is always the case for converted Swagger 2.0 documents.
func locate(ctx context.Context, data []byte, location string, swagger bool) string {
	if swagger {
		return ""
	}
	defer func() { _ = recover() }() // best effort: the error is reported anyway
	l := newLoader(ctx, location)
	l.IncludeOrigin = true
	var (
		t   *openapi3.T
		err error
	)
	if location != "" {
		t, err = l.LoadFromDataWithPath(data, &url.URL{Path: filepath.ToSlash(location)})
	} else {
		t, err = l.LoadFromData(data)
	}
	if err != nil {
		return ""
	}
	verr := t.Validate(ctx, validationOptions()...)
	if verr == nil {
		return ""
	}
	loc := deepestOrigin(verr)
	if loc == nil || loc.Line <= 0 {
		return ""
	}
	if loc.File != "" && location != "" && filepath.Clean(filepath.FromSlash(loc.File)) != filepath.Clean(location) {
		return fmt.Sprintf("%s:%d", loc.File, loc.Line)
	}
	return fmt.Sprintf("line %d", loc.Line)
}

// deepestOrigin walks err's chain (both Unwrap forms) and returns the key
// location of the innermost error that carries an Origin field.
func deepestOrigin(err error) *openapi3.Location {
	var found *openapi3.Location
	stack := []error{err}
	for steps := 0; len(stack) > 0 && steps < maxErrorChain; steps++ {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e == nil {
			continue
		}
		if v := reflect.ValueOf(e); v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			if f := v.Elem().FieldByName("Origin"); f.IsValid() && f.CanInterface() {
				if o, ok := f.Interface().(*openapi3.Origin); ok && o != nil && o.Key != nil && o.Key.Line > 0 {
					found = o.Key
				}
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			stack = append(stack, u.Unwrap())
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			for i := len(errs) - 1; i >= 0; i-- {
				stack = append(stack, errs[i])
			}
		}
	}
	return found
}

// docHead holds the two fields that tell the document kinds apart.
type docHead struct {
	Swagger *string
	OpenAPI *string
}

// readHead reads the version fields. YAML is tried first; JSON that YAML
// rejects (duplicate keys, which the library accepts last-one-wins) is read
// with encoding/json. A version written as a number (openapi: 3.0) is
// refused with a hint, as the library would refuse it with a puzzling one.
func readHead(data []byte) (docHead, error) {
	var head docHead
	var nodes struct {
		Swagger yaml.Node `yaml:"swagger"`
		OpenAPI yaml.Node `yaml:"openapi"`
	}
	yerr := yaml.Unmarshal(data, &nodes)
	if yerr == nil {
		for _, f := range []struct {
			name string
			node *yaml.Node
			dst  **string
		}{{"swagger", &nodes.Swagger, &head.Swagger}, {"openapi", &nodes.OpenAPI, &head.OpenAPI}} {
			switch {
			case f.node.Kind == 0:
				// absent
			case f.node.Kind != yaml.ScalarNode:
				return head, fmt.Errorf("line %d: field %q must be a version string", f.node.Line, f.name)
			case f.node.Tag != "!!str":
				return head, fmt.Errorf("line %d: field %q must be a string: quote it (%s: %q)", f.node.Line, f.name, f.name, f.node.Value)
			default:
				v := f.node.Value
				*f.dst = &v
			}
		}
		return head, nil
	}
	var raw struct {
		Swagger *string `json:"swagger"`
		OpenAPI *string `json:"openapi"`
	}
	if jerr := json.Unmarshal(data, &raw); jerr != nil {
		return head, fmt.Errorf("parse: %w", yerr)
	}
	return docHead(raw), nil
}

// newLoader returns a loader that resolves $ref only to local files, each
// bounded by maxSpecBytes, at most maxRefFiles of them.
func newLoader(ctx context.Context, location string) *openapi3.Loader {
	l := openapi3.NewLoader()
	l.Context = ctx
	l.IsExternalRefsAllowed = location != ""
	var (
		mu    sync.Mutex
		files = map[string][]byte{}
	)
	l.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		if u.Scheme != "" && u.Scheme != "file" || u.Host != "" || u.Opaque != "" {
			return nil, &RemoteRefError{URI: u.Redacted()}
		}
		if location == "" {
			return nil, fmt.Errorf("refusing $ref to file %q: the document was loaded from memory without a location", u.Path)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := path.Clean(filepath.FromSlash(u.Path))
		mu.Lock()
		defer mu.Unlock()
		if b, ok := files[p]; ok {
			return b, nil
		}
		if len(files) >= maxRefFiles {
			return nil, fmt.Errorf("refusing $ref to %q: more than %d referenced files", p, maxRefFiles)
		}
		b, err := readLimited(p)
		if err != nil {
			return nil, err
		}
		files[p] = b
		return b, nil
	}
	return l
}

// readLimited reads a local file of at most maxSpecBytes.
func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > maxSpecBytes {
		return nil, fmt.Errorf("read %s: file is larger than the %d byte limit", p, maxSpecBytes)
	}
	return b, nil
}

// build turns a validated library document into the model.
func build(t *openapi3.T, version, name string) (*Document, error) {
	doc := &Document{Path: name, Version: version, T: t, byKey: map[string]*Operation{}}
	if t.Info != nil {
		doc.Title, doc.APIVersion = t.Info.Title, t.Info.Version
	}
	doc.BasePaths = basePaths(t.Servers)

	if t.Paths == nil {
		return doc, nil
	}
	tmpls := t.Paths.Map()
	keys := make([]string, 0, len(tmpls))
	for k := range tmpls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, tmpl := range keys {
		item := tmpls[tmpl]
		if item == nil {
			continue
		}
		params, err := templateParams(tmpl)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", tmpl, err)
		}
		ops := item.Operations()
		methods := make([]string, 0, len(ops))
		for m, op := range ops {
			if op != nil {
				methods = append(methods, m)
			}
		}
		sort.Strings(methods)
		for _, m := range methods {
			lib := ops[m]
			method := strings.ToUpper(m)
			if !isToken(method) {
				return nil, fmt.Errorf("path %q: invalid method %q", tmpl, m)
			}
			op := &Operation{
				ID:         lib.OperationID,
				Method:     method,
				Path:       tmpl,
				Key:        method + " " + tmpl,
				PathParams: params,
				Deprecated: lib.Deprecated,
				Tags:       append([]string(nil), lib.Tags...),
				Op:         lib,
				PathItem:   item,
			}
			if lib.Security != nil {
				op.Security, op.SecurityExplicit = convertSecurity(*lib.Security), true
			} else {
				op.Security = convertSecurity(t.Security) // a copy per operation
			}
			if _, dup := doc.byKey[op.Key]; dup {
				return nil, fmt.Errorf("duplicate operation %q", op.Key)
			}
			doc.byKey[op.Key] = op
			doc.Operations = append(doc.Operations, op)
		}
	}
	// Methods are sorted per path above; a stable sort by template keeps that.
	sort.SliceStable(doc.Operations, func(i, j int) bool { return doc.Operations[i].Path < doc.Operations[j].Path })
	return doc, nil
}

// convertSecurity copies library requirements into the model. A nil input
// gives an empty, non-nil list so "anonymous" and "unset" never look alike in
// Operation.Security (SecurityExplicit tells the two sources apart).
func convertSecurity(in openapi3.SecurityRequirements) []SecurityRequirement {
	out := make([]SecurityRequirement, 0, len(in))
	for _, req := range in {
		r := make(SecurityRequirement, len(req))
		for scheme, scopes := range req {
			r[scheme] = append([]string{}, scopes...)
		}
		out = append(out, r)
	}
	return out
}

// isToken reports whether s is a non-empty RFC 9110 token (a valid method).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// basePaths derives the candidate base paths from the servers list.
func basePaths(servers openapi3.Servers) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] && len(out) < maxBasePaths {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, s := range servers {
		if s == nil {
			continue
		}
		for _, raw := range expandServerURL(s) {
			add(serverPath(raw))
		}
	}
	if len(out) == 0 {
		out = append(out, "")
	}
	return out
}

// expandServerURL substitutes each server variable by its default and by
// every enum value, returning at most maxBasePaths URLs.
func expandServerURL(s *openapi3.Server) []string {
	urls := []string{s.URL}
	names := make([]string, 0, len(s.Variables))
	for n := range s.Variables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := s.Variables[n]
		if v == nil {
			continue
		}
		placeholder := "{" + n + "}"
		if !strings.Contains(s.URL, placeholder) {
			continue
		}
		values := []string{v.Default}
		for _, e := range v.Enum {
			if e != v.Default {
				values = append(values, e)
			}
		}
		next := make([]string, 0, len(urls)*len(values))
		for _, u := range urls {
			for _, val := range values {
				if len(next) < maxBasePaths {
					next = append(next, strings.ReplaceAll(u, placeholder, val))
				}
			}
		}
		urls = next
	}
	return urls
}

// serverPath returns the escaped path part of a server URL, without a
// trailing slash ("" for none or "/"). It never fails: server URLs in the wild
// carry unresolved variables and other quirks, and a bad one must not stop an
// otherwise valid spec from loading.
func serverPath(raw string) string {
	raw = strings.TrimSpace(raw)
	if i := strings.Index(raw, "://"); i >= 0 {
		// Absolute URL: drop scheme and authority by hand, so a leftover
		// "{scheme}" or an odd host cannot make url.Parse reject it.
		rest := raw[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return ""
		}
		raw = rest[j:]
	} else if !strings.HasPrefix(raw, "/") && raw != "" {
		// No scheme and not absolute: "api.example.com/v1" (a host written
		// without a scheme, common in converted specs) or a relative path
		// such as "v1". A first segment with a dot is taken as a host.
		first, rest, _ := strings.Cut(raw, "/")
		if strings.Contains(first, ".") {
			raw = "/" + rest
		} else {
			raw = "/" + raw
		}
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	p := raw
	if u, err := url.Parse(raw); err == nil {
		p = u.EscapedPath()
	}
	return strings.TrimRight(p, "/")
}

// templateParams lists the parameter names of a path template in order,
// rejecting unbalanced or nested braces.
func templateParams(tmpl string) ([]string, error) {
	var names []string
	for i := 0; i < len(tmpl); i++ {
		switch tmpl[i] {
		case '{':
			j := strings.IndexAny(tmpl[i+1:], "{}/")
			if j < 0 || tmpl[i+1+j] != '}' {
				return nil, errors.New("unbalanced '{' in path template")
			}
			name := tmpl[i+1 : i+1+j]
			if name == "" {
				return nil, errors.New("empty parameter name in path template")
			}
			names = append(names, name)
			i += j + 1
		case '}':
			return nil, errors.New("unbalanced '}' in path template")
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	return names, nil
}

// SecurityScheme describes one of the document's security schemes.
type SecurityScheme struct {
	Name string
	// Type is apiKey, http, oauth2, openIdConnect or mutualTLS.
	Type string
	// Scheme is the HTTP auth scheme for Type http (bearer, basic, ...).
	Scheme string
	// In and ParamName locate an apiKey (header, query or cookie).
	In, ParamName string
}

// SecurityScheme returns the named scheme from components.securitySchemes.
func (d *Document) SecurityScheme(name string) (SecurityScheme, bool) {
	if d == nil || d.T == nil || d.T.Components == nil {
		return SecurityScheme{}, false
	}
	ref, ok := d.T.Components.SecuritySchemes[name]
	if !ok || ref == nil || ref.Value == nil {
		return SecurityScheme{}, false
	}
	v := ref.Value
	return SecurityScheme{Name: name, Type: v.Type, Scheme: strings.ToLower(v.Scheme), In: v.In, ParamName: v.Name}, true
}
