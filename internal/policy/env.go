// Package policy is the policy language of Bulwark: a typed CEL
// environment, compiled programs, and the activation that exposes one
// exchange to them. Stages (authz object rules, custom rules) compile their
// expressions once when the configuration loads and evaluate them per
// request; this package knows nothing of rules or decisions.
//
// The variables every expression sees:
//
//	request    map: method string, path string, headers map(string,string)
//	           (lower-case names, repeated values joined with ", "),
//	           query map(string,string) (first value of each parameter),
//	           query_all map(string,list(string)) (every value; use it
//	           where a repeated parameter could be read differently by
//	           the upstream),
//	           body dyn (the JSON-decoded request body; null when there is
//	           none, it is not JSON, or it is larger than MaxBodyBytes),
//	           client string (the client's IP address: the TCP peer's, or the
//	           one a trusted proxy reported)
//	params     map(string,string): path parameters of the matched operation
//	operation  string: "METHOD /template" of the matched operation
//	api        string: the matched API's name
//	identity   map: subject, provider, kind, tenant, client_id (strings),
//	           claims (dyn map), scopes and roles (lists of strings);
//	           null for an anonymous request (declared dyn so that
//	           `identity == null` type-checks)
//	response   map: status int, headers map(string,string), body dyn —
//	           declared only for response-side expressions
//
// Typing: params is map(string,string), so `params.X + 1` is a compile
// error. The fields of request, identity and response are dyn: CEL has no
// record type without protobuf, so a misspelt field is found at run time
// (a "no such key" error), not at compile time.
//
// Failure: every runtime error (a missing key, a type error, null where a
// map is needed, the cost limit) is returned by Program.Eval; callers fail
// closed. In particular an expression that reads a field of identity on an
// anonymous request returns an error, deterministically — it never
// evaluates to false silently. Use `identity != null && ...` to make the
// anonymous case explicit.
package policy

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Side says where an expression is evaluated: on the request, before the
// upstream is called, or on the response, before it leaves the gateway.
type Side uint8

const (
	// Request expressions see request, params, operation, api and identity.
	Request Side = iota
	// Response expressions also see response.
	Response
)

func (s Side) String() string {
	if s == Response {
		return "response"
	}
	return "request"
}

// Limits of evaluation. They are per expression and per evaluation.
const (
	// CostLimit bounds the work of one evaluation, in CEL cost units
	// (roughly one per operation, one per element visited by a
	// comprehension). Authorization expressions are comparisons and
	// membership tests costing tens of units; 10000 leaves room for a
	// comprehension over a few thousand body elements and stops an
	// expression that would spend milliseconds of CPU on each request.
	CostLimit = 10000
	// InterruptCheckFrequency is how many comprehension iterations run
	// between checks of the context, so a cancelled request stops a long
	// evaluation.
	InterruptCheckFrequency = 100
	// MaxExpressionBytes bounds the source of one expression: policies are
	// short; a megabyte expression is a mistake or an attack on the loader.
	MaxExpressionBytes = 16 << 10
)

// Env is the typed CEL environment shared by every expression of Bulwark.
// It is immutable and safe for concurrent use.
type Env struct {
	req, resp *cel.Env
}

// NewEnv returns the environment with the variables described in the
// package documentation, the CEL standard library, optional types
// (`request.body.?x.orValue(0)`) and the string extensions.
func NewEnv() (*Env, error) {
	strMap := cel.MapType(cel.StringType, cel.StringType)
	dynMap := cel.MapType(cel.StringType, cel.DynType)
	req, err := cel.NewEnv(
		cel.OptionalTypes(),
		ext.Strings(),
		cel.Variable("request", dynMap),
		cel.Variable("params", strMap),
		cel.Variable("operation", cel.StringType),
		cel.Variable("api", cel.StringType),
		// dyn rather than map(string, dyn): CEL's checker does not let a
		// map be compared with null, and identity is null when anonymous.
		cel.Variable("identity", cel.DynType),
	)
	if err != nil {
		return nil, fmt.Errorf("policy: request environment: %w", err)
	}
	resp, err := req.Extend(cel.Variable("response", dynMap))
	if err != nil {
		return nil, fmt.Errorf("policy: response environment: %w", err)
	}
	return &Env{req: req, resp: resp}, nil
}

// Program is a compiled, type-checked expression. It is safe for
// concurrent use.
type Program struct {
	src  string
	side Side
	prg  cel.Program
}

// String returns the source of the expression.
func (p *Program) String() string { return p.src }

// Side returns the side the expression was compiled for.
func (p *Program) Side() Side { return p.side }

// Compile parses and type-checks expr for the given side. The result type
// must be bool. The error carries CEL's message with the line:column inside
// the expression; the caller adds the file:line of the configuration.
// Using response in a request-side expression is a compile error
// (undeclared reference).
func (e *Env) Compile(expr string, side Side) (*Program, error) {
	return e.compile(expr, side, valueBool)
}

// CompileKey compiles an expression that gives a key rather than a
// decision: a string, an int, a uint, or a dyn value that turns out to be
// one at evaluation (request.body.username). Evaluate it with EvalKey.
func (e *Env) CompileKey(expr string, side Side) (*Program, error) {
	return e.compile(expr, side, valueKey)
}

// value kinds a program is compiled for.
const (
	valueBool = iota
	valueKey
)

func keyTypeOK(t *types.Type) bool {
	return t.IsExactType(types.StringType) || t.IsExactType(types.IntType) ||
		t.IsExactType(types.UintType) || t.IsExactType(types.DynType)
}

func (e *Env) compile(expr string, side Side, want int) (*Program, error) {
	if len(expr) > MaxExpressionBytes {
		return nil, fmt.Errorf("policy: expression is %d bytes, more than the limit of %d", len(expr), MaxExpressionBytes)
	}
	env := e.req
	if side == Response {
		env = e.resp
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		ce := &CompileError{Side: side, Err: iss.Err()}
		if errs := iss.Errors(); len(errs) > 0 {
			loc := errs[0].Location
			ce.Line, ce.Column = loc.Line(), loc.Column()+1
		}
		return nil, ce
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !(want == valueKey && keyTypeOK(t)) {
		if want == valueKey {
			return nil, fmt.Errorf("policy: %s-side expression has type %s, want a string (or a number, or a dyn value that is one)", side, t)
		}
		return nil, fmt.Errorf("policy: %s-side expression has type %s, want bool (compare a dyn value explicitly, e.g. `x == true`)", side, t)
	}
	prg, err := env.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(InterruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("policy: %s-side expression: %w", side, err)
	}
	return &Program{src: expr, side: side, prg: prg}, nil
}

// CompileError is a syntax or type error in an expression. Its message is
// CEL's, with every error's line:column inside the expression and a caret
// under the place; Line and Column (1-based) locate the first error, so a
// config loader can turn them into a position in its file.
type CompileError struct {
	Side         Side
	Line, Column int
	Err          error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("policy: %s-side expression: %v", e.Side, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// ErrNotKey says a key expression evaluated to something other than a
// string or a whole number (null included: a missing username).
var ErrNotKey = errors.New("policy: key expression did not evaluate to a string or a number")

// EvalKey evaluates a program compiled with CompileKey and returns its
// value as a string. Errors are those of Eval, and ErrNotKey.
func (p *Program) EvalKey(ctx context.Context, a Activation) (string, error) {
	if a.a == nil {
		return "", errors.New("policy: zero Activation")
	}
	if p.side == Response && !a.a.hasResponse {
		return "", ErrSide
	}
	out, _, err := p.prg.ContextEval(ctx, a.a)
	if err != nil {
		return "", fmt.Errorf("policy: evaluate: %w", err)
	}
	switch v := out.(type) {
	case types.String:
		return string(v), nil
	case types.Int:
		return strconv.FormatInt(int64(v), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(v), 10), nil
	}
	return "", ErrNotKey
}

// ErrNotBool says an expression evaluated to something other than a bool
// (possible only through a dyn value the checker could not see).
var ErrNotBool = errors.New("policy: expression did not evaluate to a bool")

// ErrSide says a response-side program was given a request-side activation.
var ErrSide = errors.New("policy: response-side expression evaluated without a response")

// Eval evaluates the program against the activation. Every runtime error
// (no such key, a type error, null where a map is needed, the cost limit,
// a cancelled context) is returned; the caller decides, and Bulwark's
// stages fail closed.
func (p *Program) Eval(ctx context.Context, a Activation) (bool, error) {
	if a.a == nil {
		return false, errors.New("policy: zero Activation")
	}
	if p.side == Response && !a.a.hasResponse {
		return false, ErrSide
	}
	out, _, err := p.prg.ContextEval(ctx, a.a)
	if err != nil {
		return false, fmt.Errorf("policy: evaluate: %w", err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, ErrNotBool
	}
	return bool(b), nil
}
