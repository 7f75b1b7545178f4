package inventory

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Format is an export encoding.
type Format string

// Export formats.
const (
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// Export defaults.
const (
	// exportOpenAPIVersion is written in every exported document. The
	// document also keeps to the subset valid under 3.0 (single types, no
	// "null" type), so 3.0-only tools read it too.
	exportOpenAPIVersion = "3.1.0"
	// defaultExportVersion is info.version when none is given.
	defaultExportVersion = "inferred"
	// defaultExportTitle is info.title when none is given.
	defaultExportTitle = "Inferred API"
	// jsonContentType is the media type of sampled bodies.
	jsonContentType = "application/json"
	// extensionKey holds what the inventory observed, per operation.
	extensionKey = "x-bulwark"
)

// ExportOptions selects and names an exported document.
type ExportOptions struct {
	// API limits the export to one API; "" exports every endpoint.
	API string
	// Title and Version fill info; defaults "Inferred API" and "inferred".
	Title, Version string
	// Format is FormatJSON (the default) or FormatYAML.
	Format Format
}

// OpenAPI returns the whole inventory as an OpenAPI 3.1 JSON document.
func (inv *Inventory) OpenAPI(title string) ([]byte, error) {
	return inv.ExportOpenAPI(ExportOptions{Title: title, Format: FormatJSON})
}

// ExportOpenAPI writes the inferred paths as an OpenAPI 3.1 document:
// path parameters (required, string), query parameters seen, sampled
// request and response bodies, one response per status code seen.
// Endpoints whose template cannot be a valid OpenAPI path are left out
// and listed under info.x-bulwark-skipped.
func (inv *Inventory) ExportOpenAPI(o ExportOptions) ([]byte, error) {
	if o.Title == "" {
		o.Title = defaultExportTitle
	}
	if o.Version == "" {
		o.Version = defaultExportVersion
	}
	eps := inv.Endpoints()
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].Count > eps[j].Count })

	type pathEntry struct {
		tmpl   string
		params []string
		ops    map[string]Endpoint
	}
	byShape := map[string]*pathEntry{}
	var skipped []string
	for _, ep := range eps {
		if o.API != "" && ep.API != o.API {
			continue
		}
		params, err := exportParams(ep.Template)
		if err != nil {
			skipped = append(skipped, ep.Method+" "+ep.Template)
			continue
		}
		shape := templateShape(ep.Template)
		pe := byShape[shape]
		if pe == nil {
			pe = &pathEntry{tmpl: ep.Template, params: params, ops: map[string]Endpoint{}}
			byShape[shape] = pe
		}
		m := strings.ToLower(ep.Method)
		if !isExportMethod(m) {
			skipped = append(skipped, ep.Method+" "+ep.Template)
			continue
		}
		if _, dup := pe.ops[m]; !dup { // most called first
			pe.ops[m] = ep
		}
	}

	paths := map[string]any{}
	opIDs := map[string]bool{}
	shapes := make([]string, 0, len(byShape))
	for sh := range byShape {
		shapes = append(shapes, sh)
	}
	sort.Strings(shapes) // deterministic operation ids
	for _, sh := range shapes {
		pe := byShape[sh]
		if len(pe.ops) == 0 {
			continue
		}
		item := map[string]any{}
		if len(pe.params) > 0 {
			var ps []any
			for _, n := range pe.params {
				ps = append(ps, map[string]any{
					"name": n, "in": inPath, "required": true,
					"schema": map[string]any{kwType: typeString},
				})
			}
			item["parameters"] = ps
		}
		methods := make([]string, 0, len(pe.ops))
		for m := range pe.ops {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, m := range methods {
			item[m] = exportOperation(pe.ops[m], m, pe.tmpl, opIDs)
		}
		paths[pe.tmpl] = item
	}
	info := map[string]any{"title": o.Title, "version": o.Version}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		info[extensionKey+"-skipped"] = skipped
	}
	doc := map[string]any{
		"openapi": exportOpenAPIVersion,
		"info":    info,
		"paths":   paths,
	}
	switch o.Format {
	case FormatJSON, "":
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("export openapi: %w", err)
		}
		return append(b, '\n'), nil
	case FormatYAML:
		b, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("export openapi: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("export openapi: unknown format %q (want %q or %q)", o.Format, FormatJSON, FormatYAML)
}

// isExportMethod reports whether m (lower case) is a path item field.
func isExportMethod(m string) bool {
	switch m {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

// exportParams checks that tmpl is a valid OpenAPI path (absolute, no
// empty segment but the root, balanced braces, unique parameter names)
// and returns its parameter names.
func exportParams(tmpl string) ([]string, error) {
	if err := CheckTemplate(tmpl); err != nil {
		return nil, err
	}
	if tmpl != "/" && (strings.Contains(tmpl, "//") || strings.HasSuffix(tmpl, "/")) {
		return nil, fmt.Errorf("template %q: empty segment", tmpl)
	}
	var names []string
	seen := map[string]bool{}
	for _, seg := range strings.Split(tmpl[1:], "/") {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		_, ns, _ := splitTemplateSegment(seg)
		for _, n := range ns {
			if seen[n] {
				return nil, fmt.Errorf("template %q: parameter %q repeated", tmpl, n)
			}
			seen[n] = true
			names = append(names, n)
		}
	}
	return names, nil
}

// templateShape replaces parameter names by nothing: two templates with
// the same shape are the same OpenAPI path.
func templateShape(tmpl string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(tmpl); i++ {
		switch c := tmpl[i]; {
		case c == '{':
			depth++
			b.WriteString("{}")
		case c == '}':
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// exportOperation builds one operation object.
func exportOperation(ep Endpoint, method, tmpl string, ids map[string]bool) map[string]any {
	op := map[string]any{
		"operationId": operationID(method, tmpl, ids),
		"summary":     fmt.Sprintf("Observed %d calls", ep.Count),
	}
	var query []any
	body := map[string]any{}
	for _, p := range ep.Params {
		switch p.In {
		case inQuery:
			query = append(query, map[string]any{
				"name": p.Name, "in": inQuery, "required": false,
				"schema": paramSchema(p.Type),
			})
		case inBody:
			body[p.Name] = paramSchema(p.Type)
		}
	}
	if len(query) > 0 {
		op["parameters"] = query
	}
	reqSchema := ep.RequestSchema
	if reqSchema == nil && len(body) > 0 {
		reqSchema = map[string]any{kwType: typeObject, kwProperties: body}
	}
	if reqSchema != nil {
		op["requestBody"] = map[string]any{
			"content": map[string]any{jsonContentType: map[string]any{"schema": exportSchema(reqSchema, 0)}},
		}
	}
	responses := map[string]any{}
	codes := make([]int, 0, len(ep.Status))
	for code := range ep.Status {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	for _, code := range codes {
		n := ep.Status[code]
		key := "default"
		if code >= 100 && code <= 599 {
			key = strconv.Itoa(code)
		}
		if _, dup := responses[key]; dup {
			continue // several out-of-range codes fold into one default
		}
		r := map[string]any{"description": fmt.Sprintf("Observed %d times", n)}
		if ep.ResponseSchema != nil && code < 400 {
			r["content"] = map[string]any{jsonContentType: map[string]any{"schema": exportSchema(ep.ResponseSchema, 0)}}
		}
		responses[key] = r
	}
	if len(responses) == 0 {
		responses["default"] = map[string]any{"description": "Observed response"}
	}
	op["responses"] = responses
	x := map[string]any{
		"id":          ep.ID,
		"count":       ep.Count,
		"first_seen":  ep.FirstSeen.UTC().Format(time.RFC3339),
		"last_seen":   ep.LastSeen.UTC().Format(time.RFC3339),
		"spec_status": ep.SpecStatus,
	}
	if ep.API != "" {
		x["api"] = ep.API
	}
	if len(ep.Auth) > 0 {
		x["auth"] = ep.Auth
	}
	if ep.Exposure != "" {
		x["exposure"] = ep.Exposure
	}
	if len(ep.ResponseClasses) > 0 {
		x["response_classes"] = ep.ResponseClasses
	}
	op[extensionKey] = x
	return op
}

// operationID derives a unique id from the method and the template's
// alphanumeric runs: "get_accounts_accountId".
func operationID(method, tmpl string, ids map[string]bool) string {
	var b strings.Builder
	b.WriteString(method)
	sep := false
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if !isAlnum(c) {
			sep = true
			continue
		}
		if sep {
			b.WriteByte('_')
			sep = false
		}
		b.WriteByte(c)
	}
	id := b.String()
	if !ids[id] {
		ids[id] = true
		return id
	}
	for n := 2; ; n++ {
		c := id + "_" + strconv.Itoa(n)
		if !ids[c] {
			ids[c] = true
			return c
		}
	}
}

// paramSchema is the schema of a parameter of JSON type t.
func paramSchema(t string) map[string]any {
	switch t {
	case typeInteger, typeNumber, typeBoolean, typeObject:
		return map[string]any{kwType: t}
	case typeArray:
		return map[string]any{kwType: typeArray, kwItems: map[string]any{kwType: typeString}}
	}
	return map[string]any{kwType: typeString}
}

// exportSchema converts a merged shape into a schema valid under both
// OpenAPI 3.0 and 3.1: null alternatives are dropped (the two versions
// spell nullability differently), unknown types and formats are dropped.
func exportSchema(s map[string]any, depth int) map[string]any {
	out := map[string]any{}
	if depth >= maxSchemaDepth {
		return out
	}
	if alts, ok := s[kwAnyOf].([]any); ok {
		var vs []any
		for _, a := range alts {
			m, ok := a.(map[string]any)
			if !ok || schemaType(m) == typeNull {
				continue
			}
			if e := exportSchema(m, depth+1); len(e) > 0 {
				vs = append(vs, e)
			}
		}
		switch len(vs) {
		case 0:
			return out
		case 1:
			return vs[0].(map[string]any)
		}
		out[kwAnyOf] = vs
		return out
	}
	switch t := schemaType(s); t {
	case typeObject:
		out[kwType] = t
		if props, ok := s[kwProperties].(map[string]any); ok && len(props) > 0 {
			np := map[string]any{}
			for k, v := range props {
				if m, ok := v.(map[string]any); ok {
					np[k] = exportSchema(m, depth+1)
				}
			}
			out[kwProperties] = np
		}
	case typeArray:
		out[kwType] = t
		items := map[string]any{}
		if m, ok := s[kwItems].(map[string]any); ok {
			items = exportSchema(m, depth+1)
		}
		out[kwItems] = items
	case typeString, typeInteger, typeNumber, typeBoolean:
		out[kwType] = t
		if f, ok := s[kwFormat].(string); ok && knownFormat(f) {
			out[kwFormat] = f
		}
	}
	return out
}

// knownFormat reports whether f is a format both OpenAPI versions define.
func knownFormat(f string) bool {
	switch f {
	case "int32", "int64", "float", "double", "byte", "binary", "date", "date-time",
		"password", "email", "uuid", "uri", "hostname", "ipv4", "ipv6":
		return true
	}
	return false
}
