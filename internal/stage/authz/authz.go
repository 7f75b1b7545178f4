// Package authz is the authorize stage. On the request it checks, in order:
// function-level authorization (administrative operations, roles and
// scopes per operation: OWASP API5 BFLA), tenant isolation, object-level
// rules (allow expressions over params, body and identity: OWASP API1
// BOLA) and custom business rules (block, flag, step_up). On the response
// it checks the owner expressions of object rules against the body before
// it leaves the gateway. Every expression is CEL, compiled once by New; an
// expression that cannot be evaluated fails closed. A 403 names the rule or
// the operation, never the data; each object decision records a hash of the
// object id on the exchange.
package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// StageName is the stage's name in decisions, metrics and the audit log.
const StageName = "authorize"

// AdminExtension marks an operation of the spec as administrative.
const AdminExtension = "x-bulwark-admin"

// ResponseBodyLimit is how much of a response body an owner rule reads; a
// larger body cannot be verified and is refused.
const ResponseBodyLimit = 1 << 20

// stepUpChallenge is the RFC 9470 challenge of a step_up rule.
const stepUpChallenge = `Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required"`

// Options configure the stage for one API.
type Options struct {
	API       string
	Spec      *spec.Document // may be nil
	Objects   []config.ObjectRule
	Rules     []config.BusinessRule
	Authorize *config.Authorize // may be nil
	// Env is the shared CEL environment.
	Env *policy.Env
}

// FieldError locates a compile problem in the API's config: Path is
// relative to the API ("objects[1].allow", "rules[0].when").
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

// Field is the path of the problem under the API's config.
func (e *FieldError) Field() string { return e.Path }

// Unwrap returns the underlying error (a *policy.CompileError for a CEL
// syntax or type error, with its line and column).
func (e *FieldError) Unwrap() error { return e.Err }

// objectRule is one compiled object rule.
type objectRule struct {
	operation string
	allow     *policy.Program // nil: no request-side check
	owner     *policy.Program // nil: no response-side check
	idParam   string          // "" : the last path parameter
	detail    string
}

// businessRule is one compiled custom rule.
type businessRule struct {
	name      string
	operation string // "" : every operation
	action    string
	when      *policy.Program
	detail    string
}

// access is the function-level requirement of one operation.
type access struct {
	admin  bool
	roles  [][]string // each entry: at least one of these roles
	scopes []string   // all of these scopes
}

// Stage authorizes the requests of one API.
type Stage struct {
	api         string
	monitor     bool
	adminRoles  []string
	tenantParam string
	access      map[string]*access
	objects     map[string][]*objectRule
	owners      map[string][]*objectRule
	rules       []*businessRule
}

var (
	_ pipeline.Stage         = (*Stage)(nil)
	_ pipeline.ResponseStage = (*Stage)(nil)
)

// New compiles every expression of the API's authorization config. It
// returns the errors.Join of a *FieldError for every bad expression, and
// for every object rule whose operation the spec (when there is one) does
// not have.
func New(o Options) (*Stage, error) {
	if o.Env == nil && (len(o.Objects) > 0 || len(o.Rules) > 0) {
		return nil, errors.New("authorize: no policy environment")
	}
	s := &Stage{
		api:     o.API,
		access:  map[string]*access{},
		objects: map[string][]*objectRule{},
		owners:  map[string][]*objectRule{},
	}
	if az := o.Authorize; az != nil {
		s.monitor = az.Mode == "monitor"
		s.adminRoles = az.AdminRoles
		s.tenantParam = az.TenantParam
		for _, op := range az.AdminOperations {
			s.accessFor(op).admin = true
		}
		for _, ac := range az.Access {
			a := s.accessFor(ac.Operation)
			if len(ac.Roles) > 0 {
				a.roles = append(a.roles, ac.Roles)
			}
			a.scopes = append(a.scopes, ac.Scopes...)
		}
	}
	if o.Spec != nil {
		for _, op := range o.Spec.Operations {
			if op.Op != nil && isTrue(op.Op.Extensions[AdminExtension]) {
				s.accessFor(op.Key).admin = true
			}
		}
	}

	var errs []error
	fail := func(path string, err error) { errs = append(errs, &FieldError{Path: path, Err: err}) }
	for i, ob := range o.Objects {
		p := fmt.Sprintf("objects[%d]", i)
		key := ob.Operation
		if o.Spec != nil {
			if op := o.Spec.Operation(ob.Operation); op != nil {
				key = op.Key
			} else {
				fail(p+".operation", fmt.Errorf("the spec has no operation %q", ob.Operation))
			}
		}
		r := &objectRule{operation: key, detail: "Denied by the object rule of " + key + "."}
		var err error
		if strings.TrimSpace(ob.Allow) != "" {
			if r.allow, err = o.Env.Compile(ob.Allow, policy.Request); err != nil {
				fail(p+".allow", err)
			}
		}
		if strings.TrimSpace(ob.Owner) != "" {
			if r.owner, err = o.Env.Compile(ob.Owner, policy.Response); err != nil {
				fail(p+".owner", err)
			}
		}
		if id := strings.TrimSpace(ob.ID); id != "" {
			name, ok := strings.CutPrefix(id, "params.")
			if !ok || !isIdent(name) {
				fail(p+".id", errors.New("only params.<name> is supported"))
			}
			r.idParam = name
		}
		// Every object rule records its id, even one with only an owner.
		s.objects[key] = append(s.objects[key], r)
		if r.owner != nil {
			s.owners[key] = append(s.owners[key], r)
		}
	}
	for i, br := range o.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		r := &businessRule{name: br.Name, operation: br.Operation, action: br.Action, detail: "Denied by rule " + br.Name + "."}
		if o.Spec != nil && br.Operation != "" {
			if op := o.Spec.Operation(br.Operation); op != nil {
				r.operation = op.Key
			}
		}
		when, err := o.Env.Compile(br.When, policy.Request)
		if err != nil {
			fail(p+".when", err)
			continue
		}
		r.when = when
		s.rules = append(s.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (s *Stage) accessFor(op string) *access {
	a := s.access[op]
	if a == nil {
		a = &access{}
		s.access[op] = a
	}
	return a
}

// Name returns StageName.
func (s *Stage) Name() string { return StageName }

// HasResponseRules reports whether any object rule has an owner expression,
// so the response stage is needed.
func (s *Stage) HasResponseRules() bool { return len(s.owners) > 0 }

// stop returns a 403 (or status) Stop decision carrying the stage's mode.
func (s *Stage) stop(status int, reason, detail string, rules ...string) pipeline.Decision {
	d := pipeline.Halt(status, reason, detail)
	d.Rules = rules
	d.Monitor = s.monitor
	return d
}

// Handle runs the request-side checks; the first Stop wins.
func (s *Stage) Handle(ctx context.Context, x *pipeline.Exchange) pipeline.Decision {
	id := x.Identity
	op := x.Operation

	// 1. Function level.
	if a := s.access[op]; a != nil {
		if a.admin && !hasAnyRole(id, s.adminRoles) {
			return s.stop(http.StatusForbidden, "admin_operation", op+" is an administrative operation.", op)
		}
		for _, roles := range a.roles {
			if !hasAnyRole(id, roles) {
				return s.stop(http.StatusForbidden, "insufficient_role", op+" requires a role the caller does not hold.", op)
			}
		}
		for _, sc := range a.scopes {
			if id == nil || !id.HasScope(sc) {
				return s.stop(http.StatusForbidden, "insufficient_scope", op+" requires a scope the token does not hold.", op)
			}
		}
	}

	// 2. Tenant isolation.
	if s.tenantParam != "" {
		v, ok := x.Params.Get(s.tenantParam)
		if !ok && x.Request != nil && x.Request.URL != nil && x.Request.URL.RawQuery != "" {
			q := x.Request.URL.Query()
			if vs, has := q[s.tenantParam]; has {
				ok = true
				if len(vs) > 0 {
					v = vs[0]
				}
				for _, other := range vs[1:] {
					if other != v { // a repeated parameter must not smuggle a second tenant
						v = ""
					}
				}
			}
		}
		if ok && (id == nil || id.Tenant == "" || id.Tenant != v) {
			return s.stop(http.StatusForbidden, "tenant_mismatch", "The request names a tenant other than the caller's.", "tenant_param")
		}
	}

	objs := s.objects[op]
	var act policy.Activation
	var actErr error
	actReady := false
	activation := func() (policy.Activation, error) {
		if !actReady {
			act, actErr = policy.NewActivation(policy.Input{Exchange: x})
			actReady = true
		}
		return act, actErr
	}

	// 3. Object level.
	for _, r := range objs {
		if name, v := objectParam(x, r.idParam); v != "" {
			if len(x.ObjectIDs) == 0 {
				x.ObjectParam = name
			}
			x.ObjectIDs = append(x.ObjectIDs, policy.HashID(v))
		}
		if r.allow == nil {
			continue
		}
		a, err := activation()
		ok := false
		if err == nil {
			ok, err = r.allow.Eval(ctx, a)
		}
		if err != nil {
			return s.stop(http.StatusForbidden, "object_rule_error", "The object rule of "+op+" could not be evaluated.", op)
		}
		if !ok {
			return s.stop(http.StatusForbidden, "object_denied", r.detail, op)
		}
	}

	// 4. Business rules.
	for _, r := range s.rules {
		if r.operation != "" && r.operation != op {
			continue
		}
		a, err := activation()
		hit := false
		if err == nil {
			hit, err = r.when.Eval(ctx, a)
		}
		if err != nil {
			if r.action == "flag" {
				x.Record(pipeline.Decision{Stage: StageName, Action: pipeline.Annotate, Reason: "rule_error", Rules: []string{r.name}})
				continue
			}
			return s.stop(http.StatusForbidden, "rule_error", "Rule "+r.name+" could not be evaluated.", r.name)
		}
		if !hit {
			continue
		}
		switch r.action {
		case "flag":
			x.Record(pipeline.Decision{Stage: StageName, Action: pipeline.Annotate, Reason: "rule_flagged", Rules: []string{r.name}})
		case "step_up":
			d := s.stop(http.StatusUnauthorized, "step_up_required", "Rule "+r.name+" requires a stronger authentication.", r.name)
			d.Headers = http.Header{"Www-Authenticate": {stepUpChallenge}}
			return d
		default: // block, and anything unknown: fail closed
			return s.stop(http.StatusForbidden, "rule_blocked", r.detail, r.name)
		}
	}
	return pipeline.Continue
}

// HandleResponse checks the owner expressions of the operation's object
// rules against a successful response.
func (s *Stage) HandleResponse(ctx context.Context, x *pipeline.Exchange, resp *http.Response) pipeline.Decision {
	owners := s.owners[x.Operation]
	if len(owners) == 0 || resp == nil || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return pipeline.Continue
	}
	op := x.Operation
	body, complete, err := x.ResponseBody(resp, ResponseBodyLimit)
	if err != nil || !complete {
		return s.stop(http.StatusForbidden, "object_owner_unverified", "The owner of the object returned by "+op+" could not be verified.", op)
	}
	a, err := policy.NewActivation(policy.Input{Exchange: x, Response: &policy.ResponseInput{Status: resp.StatusCode, Header: resp.Header, Body: body}})
	if err != nil {
		return s.stop(http.StatusForbidden, "object_owner_error", "The object rule of "+op+" could not be evaluated.", op)
	}
	for _, r := range owners {
		ok, err := r.owner.Eval(ctx, a)
		if err != nil {
			return s.stop(http.StatusForbidden, "object_owner_error", "The object rule of "+op+" could not be evaluated.", op)
		}
		if !ok {
			return s.stop(http.StatusForbidden, "object_owner_mismatch", r.detail, op)
		}
	}
	return pipeline.Continue
}

// objectParam returns the parameter an object rule is about and its
// value: the named path parameter, or the last one when no name is set.
func objectParam(x *pipeline.Exchange, param string) (name, value string) {
	if param != "" {
		v, _ := x.Params.Get(param)
		return param, v
	}
	if n := len(x.Params); n > 0 {
		return x.Params[n-1].Name, x.Params[n-1].Value
	}
	return "", ""
}

func hasAnyRole(id *identity.Identity, roles []string) bool {
	if id == nil {
		return false
	}
	for _, want := range roles {
		for _, have := range id.Roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

// isTrue reads an extension value as a boolean.
func isTrue(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.EqualFold(t, "true")
	case json.RawMessage:
		var b bool
		return json.Unmarshal(t, &b) == nil && b
	case []byte:
		var b bool
		return json.Unmarshal(t, &b) == nil && b
	}
	return false
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
