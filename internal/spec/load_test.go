package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func mustLoad(t testing.TB, path string) *Document {
	t.Helper()
	doc, err := Load(context.Background(), path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return doc
}

func opSummary(doc *Document) []string {
	var out []string
	for _, op := range doc.Operations {
		out = append(out, op.Key+" id="+op.ID+" params="+strings.Join(op.PathParams, ","))
	}
	return out
}

func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		file       string
		version    string
		title      string
		apiVersion string
		basePaths  []string
		ops        []string
	}{
		{
			file: "testdata/openapi31.yaml", version: "3.1.0", title: "Cards API (3.1 fixture)", apiVersion: "2.1.0",
			basePaths: []string{"/v2"},
			ops: []string{
				"GET /cards/{cardId} id=getCard params=cardId",
				"POST /cards/{cardId}:freeze id=freezeCard params=cardId",
			},
		},
		{
			file: "testdata/swagger2.yaml", version: "2.0", title: "Legacy Payments API", apiVersion: "1.4",
			basePaths: []string{"/legacy/v1"},
			ops: []string{
				"POST /payments id=createPayment params=",
				"DELETE /payments/{paymentId} id=cancelPayment params=paymentId",
				"GET /payments/{paymentId} id=getPayment params=paymentId",
			},
		},
		{
			file: "testdata/multifile/api.yaml", version: "3.0.3", title: "Multi-file fixture", apiVersion: "1.0",
			basePaths: []string{"/bank/v1"},
			ops: []string{
				"POST /customers id=createCustomer params=",
				"GET /customers/{customerId} id=getCustomer params=customerId",
			},
		},
		{
			file: "testdata/router.yaml", version: "3.0.3", title: "Router fixture", apiVersion: "1.0",
			basePaths: []string{"/api/v1", "/api/v2", "/open-banking/v4.0/aisp", ""},
		},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			doc := mustLoad(t, tc.file)
			if doc.Path != tc.file || doc.Version != tc.version || doc.Title != tc.title || doc.APIVersion != tc.apiVersion {
				t.Errorf("got path=%q version=%q title=%q apiVersion=%q", doc.Path, doc.Version, doc.Title, doc.APIVersion)
			}
			if !reflect.DeepEqual(doc.BasePaths, tc.basePaths) {
				t.Errorf("BasePaths = %q, want %q", doc.BasePaths, tc.basePaths)
			}
			if tc.ops != nil && !reflect.DeepEqual(opSummary(doc), tc.ops) {
				t.Errorf("operations:\n got %q\nwant %q", opSummary(doc), tc.ops)
			}
			if doc.T == nil {
				t.Fatal("library document not kept")
			}
		})
	}
}

func TestLoadOpenAPI31Features(t *testing.T) {
	doc := mustLoad(t, "testdata/openapi31.yaml")
	if !doc.T.IsOpenAPI31OrLater() {
		t.Fatal("document not recognised as 3.1")
	}
	if doc.T.Webhooks["cardIssued"] == nil {
		t.Error("webhook cardIssued not loaded")
	}
	card := doc.T.Components.Schemas["Card"].Value
	nick := card.Properties["nickname"].Value
	if nick.Type == nil || !nick.Type.Includes("string") || !nick.Type.Includes("null") {
		t.Errorf("nickname type = %v, want [string null]", nick.Type)
	}
	// The response schema $ref is resolved to the same component.
	op := doc.Operation("GET /cards/{cardId}")
	got := op.Op.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	if got != card {
		t.Error("response schema $ref not resolved to components.schemas.Card")
	}
	want := []SecurityRequirement{{"bearer": {}, "mtls": {}}, {"apiKey": {}}}
	if !reflect.DeepEqual(op.Security, want) || !op.SecurityExplicit {
		t.Errorf("security = %v explicit=%v, want %v explicit", op.Security, op.SecurityExplicit, want)
	}
}

func TestLoadSwagger2Converted(t *testing.T) {
	doc := mustLoad(t, "testdata/swagger2.yaml")
	get := doc.Operation("GET /payments/{paymentId}")
	if get == nil {
		t.Fatal("GET /payments/{paymentId} missing")
	}
	p := get.Op.Parameters.GetByInAndName("path", "paymentId")
	if p == nil || p.Schema == nil || !p.Schema.Value.Type.Is("integer") {
		t.Errorf("paymentId parameter not converted to an integer schema: %+v", p)
	}
	if got := get.Security; !reflect.DeepEqual(got, []SecurityRequirement{{"apiKey": {}}}) || get.SecurityExplicit {
		t.Errorf("GET security = %v explicit=%v, want document-level apiKey", got, get.SecurityExplicit)
	}
	del := doc.Operation("DELETE /payments/{paymentId}")
	if !del.Deprecated || !del.SecurityExplicit || len(del.Security) != 0 {
		t.Errorf("DELETE deprecated=%v explicit=%v security=%v, want deprecated anonymous", del.Deprecated, del.SecurityExplicit, del.Security)
	}
	body := doc.Operation("POST /payments").Op.RequestBody
	if body == nil || body.Value.Content.Get("application/json") == nil {
		t.Error("body parameter not converted to a request body")
	}
}

func TestLoadMultiFile(t *testing.T) {
	doc := mustLoad(t, "testdata/multifile/api.yaml")
	op := doc.Operation("GET /customers/{customerId}")
	schema := op.Op.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	if schema == nil || schema.Properties["name"] == nil {
		t.Fatalf("Customer schema from schemas.yaml not resolved: %+v", schema)
	}
	addr := schema.Properties["address"].Value
	if addr == nil || addr.Properties["postcode"] == nil {
		t.Fatal("Address schema two files away not resolved")
	}
	param := op.PathItem.Parameters.GetByInAndName("path", "customerId")
	if param == nil || param.Schema.Value.Pattern != "^cus_[0-9a-f]{16}$" {
		t.Errorf("path-level parameter from common/parameters.yaml not resolved: %+v", param)
	}
}

func TestLoadRefusesRemoteRef(t *testing.T) {
	_, err := Load(context.Background(), "testdata/remote-ref.yaml")
	if err == nil {
		t.Fatal("remote $ref accepted")
	}
	var rre *RemoteRefError
	if !errors.As(err, &rre) || rre.URI != "https://schemas.example.com/common.yaml" {
		t.Fatalf("error %v is not a RemoteRefError for the https URI", err)
	}
	if !strings.Contains(err.Error(), "testdata/remote-ref.yaml") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	const head = "openapi: 3.0.3\ninfo:\n  title: x\n  version: '1'\n"
	tests := []struct {
		name     string
		data     string
		location string
		want     []string // substrings of the error
	}{
		{"yaml syntax", head + "paths:\n  /a:\n    get:\n      responses: {200: {description: ok}\n", "api.yaml",
			[]string{"load spec api.yaml", "line 7"}},
		{"validation with line", head + "paths:\n  /a:\n    get:\n      responses: {'200': {description: ok}}\n      parameters: [{name: x, in: path, schema: {type: string}}]\n", "api.yaml",
			[]string{"load spec api.yaml", "line 6", "invalid document", "path parameters"}},
		{"path without slash", head + "paths:\n  a:\n    get:\n      responses: {'200': {description: ok}}\n", "api.yaml",
			[]string{"line 5", "does not start with a forward slash"}},
		{"missing ref file", head + "paths:\n  /a:\n    get:\n      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: './nope.yaml#/X'}}}}}\n", "testdata/api.yaml",
			[]string{"load spec testdata/api.yaml", "nope.yaml"}},
		{"file ref from memory", head + "paths:\n  /a:\n    get:\n      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: './schemas.yaml#/X'}}}}}\n", "",
			[]string{"load spec <memory>", "without a location"}},
		{"not openapi", "hello: world\n", "x.yaml", []string{"not an OpenAPI document"}},
		{"openapi 2", "openapi: '2.0'\n", "x.yaml", []string{`unsupported openapi version "2.0"`}},
		{"openapi is a map", "openapi: {a: 1}\n", "x.yaml", []string{"load spec x.yaml", `line 1: field "openapi" must be a version string`}},
		{"openapi unquoted", "info: {}\nopenapi: 3.0\n", "x.yaml", []string{"load spec x.yaml", `line 2: field "openapi" must be a string: quote it (openapi: "3.0")`}},
		{"swagger unquoted", "swagger: 2.0\n", "x.yaml", []string{`field "swagger" must be a string`}},
		{"json openapi number", `{"openapi": 3.1, "openapi": 3.1}`, "x.json", []string{"load spec x.json", "parse"}},
		{"swagger 1.2", "swagger: '1.2'\n", "x.yaml", []string{`unsupported swagger version "1.2"`}},
		{"wrong type", `{"openapi": "3.0.3", "info": {"title": 1}}`, "x.json", []string{"load spec x.json", "title"}},
		{"empty", "", "x.yaml", []string{"not an OpenAPI document"}},
		{"ambiguous parameter names", head + "paths:\n  /a/{x}:\n    get:\n      parameters: [{name: x, in: path, required: true, schema: {type: string}}]\n      responses: {'200': {description: ok}}\n  /a/{y}:\n    get:\n      parameters: [{name: y, in: path, required: true, schema: {type: string}}]\n      responses: {'200': {description: ok}}\n", "x.yaml",
			[]string{"conflicting paths"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadData(context.Background(), []byte(tc.data), tc.location)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadVersionSpellings(t *testing.T) {
	tests := []struct{ name, data, version string }{
		{"yaml 3.0", "openapi: '3.0'\ninfo: {title: x, version: '1'}\npaths: {}\n", "3.0"},
		{"json", `{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {}}`, "3.0.3"},
		// YAML rejects duplicate keys; JSON (and the library) take the last.
		{"json duplicate keys", `{"openapi": "3.0.3", "info": {"title": "x", "title": "y", "version": "1"}, "paths": {}}`, "3.0.3"},
		{"swagger", "swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n", "2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := LoadData(context.Background(), []byte(tc.data), "mem.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if doc.Version != tc.version {
				t.Errorf("Version = %q, want %q", doc.Version, tc.version)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := Load(context.Background(), "testdata/does-not-exist.yaml"); err == nil || !strings.Contains(err.Error(), "load spec testdata/does-not-exist.yaml") {
		t.Errorf("missing file: %v", err)
	}
	big := make([]byte, maxSpecBytes+1)
	if _, err := LoadData(context.Background(), big, "big.yaml"); err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Errorf("oversized document: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, "testdata/router.yaml"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestLoadOversizedRefFile(t *testing.T) {
	dir := t.TempDir()
	main := "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: './big.yaml#/X'}}}}}\n"
	if err := os.WriteFile(filepath.Join(dir, "api.yaml"), []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "big.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxSpecBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(context.Background(), filepath.Join(dir, "api.yaml"))
	if err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Fatalf("oversized referenced file: %v", err)
	}
}

func TestDocumentOperationLookup(t *testing.T) {
	doc := mustLoad(t, "testdata/router.yaml")
	tests := []struct {
		key    string
		wantID string
	}{
		{"GET /accounts/{id}", "getAccount"},
		{"get /accounts/{id}", "getAccount"},
		{"  DELETE   /accounts/{id} ", "deleteAccount"},
		{"POST /v1/{name}:verify", "verifyName"},
		{"GET /accounts/{AccountId}", ""}, // template must match as written
		{"PUT /accounts", ""},
		{"GET", ""},
		{"", ""},
	}
	for _, tc := range tests {
		op := doc.Operation(tc.key)
		got := ""
		if op != nil {
			got = op.ID
		}
		if got != tc.wantID {
			t.Errorf("Operation(%q) = %q, want %q", tc.key, got, tc.wantID)
		}
	}
	// A Document built by hand (no index) still answers.
	bare := &Document{Operations: doc.Operations}
	if op := bare.Operation("GET /accounts/current"); op == nil || op.ID != "currentAccount" {
		t.Errorf("lookup without index: %v", op)
	}
}

func TestEffectiveSecurity(t *testing.T) {
	doc := mustLoad(t, "testdata/router.yaml")
	docLevel := []SecurityRequirement{{"oauth": {"accounts"}}}
	if op := doc.Operation("GET /accounts"); !reflect.DeepEqual(op.Security, docLevel) || op.SecurityExplicit {
		t.Errorf("GET /accounts security=%v explicit=%v, want inherited %v", op.Security, op.SecurityExplicit, docLevel)
	}
	if op := doc.Operation("POST /accounts"); op.Security == nil || len(op.Security) != 0 || !op.SecurityExplicit {
		t.Errorf("POST /accounts security=%v explicit=%v, want explicit anonymous", op.Security, op.SecurityExplicit)
	}
	// The model holds copies: changing one operation's list leaves others alone.
	doc.Operation("GET /accounts").Security[0]["oauth"][0] = "changed"
	if got := doc.Operation("GET /accounts/current").Security[0]["oauth"][0]; got != "accounts" {
		t.Errorf("security scopes shared between operations: %q", got)
	}
}

func TestServerPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://api.bank.example/v1/", "/v1"},
		{"https://api.bank.example", ""},
		{"https://api.bank.example/", ""},
		{"/open-banking/v4.0/aisp", "/open-banking/v4.0/aisp"},
		{"/", ""},
		{"", ""},
		{"v1", "/v1"},
		{"api.bank.example/v2", "/v2"},
		{"{scheme}://api.example/x", "/x"}, // unresolved variable in the scheme
		{"https://h/a b", "/a%20b"},
		{"https://h/v1?x=1#f", "/v1"},
		{"http://localhost:8080", ""},
	}
	for _, tc := range tests {
		if got := serverPath(tc.in); got != tc.want {
			t.Errorf("serverPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBasePathsExpansion(t *testing.T) {
	servers := openapi3.Servers{
		{URL: "https://{region}.bank.example/{basePath}/{v}", Variables: map[string]*openapi3.ServerVariable{
			"region":   {Default: "eu", Enum: []string{"eu", "us"}},
			"basePath": {Default: "api"},
			"v":        {Default: "v2", Enum: []string{"v1", "v2"}},
		}},
		{URL: "https://other.example/api/v1"}, // duplicate of an expansion
		{URL: "https://root.example"},
	}
	got := basePaths(servers)
	want := []string{"/api/v2", "/api/v1", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("basePaths = %q, want %q", got, want)
	}
	if got := basePaths(nil); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("no servers: %q", got)
	}
	// A cartesian explosion is capped.
	many := &openapi3.Server{URL: "/{a}/{b}/{c}", Variables: map[string]*openapi3.ServerVariable{}}
	for _, n := range []string{"a", "b", "c"} {
		v := &openapi3.ServerVariable{Default: "d"}
		for i := range 10 {
			v.Enum = append(v.Enum, n+string(rune('0'+i)))
		}
		many.Variables[n] = v
	}
	if got := basePaths(openapi3.Servers{many}); len(got) != maxBasePaths {
		t.Errorf("expansion not capped: %d base paths", len(got))
	}
}

func TestTemplateParams(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"/a", nil, false},
		{"/accounts/{AccountId}/statements/{StatementId}", []string{"AccountId", "StatementId"}, false},
		{"/files/{fileID}.json", []string{"fileID"}, false},
		{"/r/{from}..{to}", []string{"from", "to"}, false},
		{"/a/{x", nil, true},
		{"/a/x}", nil, true},
		{"/a/{}", nil, true},
		{"/a/{x/y}", nil, true},
	}
	for _, tc := range tests {
		got, err := templateParams(tc.in)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("templateParams(%q) = %q, %v; want %q, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestLoadErrorNamesReferencedFileAndLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("api.yaml", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      parameters:\n        - $ref: './params.yaml#/Id'\n      responses: {'200': {description: ok}}\n")
	write("params.yaml", "# shared parameters\nId:\n  name: id\n  in: path\n  schema: {type: string}\n")
	_, err := Load(context.Background(), filepath.Join(dir, "api.yaml"))
	if err == nil {
		t.Fatal("path parameter without required: true accepted")
	}
	want := filepath.ToSlash(filepath.Join(dir, "params.yaml")) + ":2: invalid document"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "load spec "+filepath.Join(dir, "api.yaml")) {
		t.Errorf("error %q does not name both files and the line (%q)", err, want)
	}
}
