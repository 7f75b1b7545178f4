package policy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// Input is what an activation is built from.
type Input struct {
	// Exchange is the exchange being decided; required.
	Exchange *pipeline.Exchange
	// Response is the upstream response, nil on the request side.
	Response *ResponseInput
}

// ResponseInput is the part of the upstream response an expression sees.
// Body is what the caller read for inspection (already bounded and
// decoded from gzip by the pipeline).
type ResponseInput struct {
	Status int
	Header http.Header
	Body   []byte
}

// Activation exposes one exchange to programs. The variables are built
// lazily and once: the request body is read and JSON-decoded only when an
// expression touches request.body, and the decoded value is shared by every
// program evaluated with the same activation. Like the exchange, an
// Activation belongs to one request goroutine and is not safe for
// concurrent use.
type Activation struct {
	a *activation
}

// NewActivation returns the activation for in. It fails only when the
// input has no exchange or no request; the body is read later, and a body
// that cannot be read or decoded is null.
func NewActivation(in Input) (Activation, error) {
	x := in.Exchange
	if x == nil || x.Request == nil {
		return Activation{}, errors.New("policy: activation needs an exchange with a request")
	}
	a := &activation{x: x, resp: in.Response, hasResponse: in.Response != nil}
	return Activation{a: a}, nil
}

// activation implements interpreter.Activation over an exchange.
type activation struct {
	x           *pipeline.Exchange
	resp        *ResponseInput
	hasResponse bool

	request, params, identity, response ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "request":
		if a.request == nil {
			a.request = a.requestValue()
		}
		return a.request, true
	case "params":
		if a.params == nil {
			m := make(map[string]string, len(a.x.Params))
			for _, p := range a.x.Params {
				if _, dup := m[p.Name]; !dup {
					m[p.Name] = p.Value
				}
			}
			a.params = types.NewStringStringMap(types.DefaultTypeAdapter, m)
		}
		return a.params, true
	case "operation":
		return types.String(a.x.Operation), true
	case "api":
		return types.String(a.x.API), true
	case "identity":
		if a.identity == nil {
			a.identity = identityValue(a.x)
		}
		return a.identity, true
	case "response":
		if !a.hasResponse {
			return nil, false
		}
		if a.response == nil {
			a.response = a.responseValue()
		}
		return a.response, true
	}
	return nil, false
}

func (a *activation) requestValue() ref.Val {
	r := a.x.Request
	client := ""
	switch {
	case a.x.ClientAddr.IsValid():
		client = a.x.ClientAddr.String()
	case a.x.Client.IsValid():
		client = a.x.Client.Addr().Unmap().String()
	}
	path := ""
	if r.URL != nil {
		path = r.URL.Path
	}
	return newLazyMap(map[string]func() ref.Val{
		"method": func() ref.Val { return types.String(r.Method) },
		"path":   func() ref.Val { return types.String(path) },
		"client": func() ref.Val { return types.String(client) },
		"headers": func() ref.Val {
			return types.NewStringStringMap(types.DefaultTypeAdapter, headerMap(r.Header))
		},
		"query": func() ref.Val {
			return types.NewStringStringMap(types.DefaultTypeAdapter, queryMap(r.URL))
		},
		"query_all": func() ref.Val {
			return types.DefaultTypeAdapter.NativeToValue(queryAll(r.URL))
		},
		"body": func() ref.Val {
			data, err := a.x.RequestBody()
			if err != nil {
				return types.NullValue
			}
			return jsonValue(data)
		},
	})
}

func (a *activation) responseValue() ref.Val {
	resp := a.resp
	return newLazyMap(map[string]func() ref.Val{
		"status": func() ref.Val { return types.Int(resp.Status) },
		"headers": func() ref.Val {
			return types.NewStringStringMap(types.DefaultTypeAdapter, headerMap(resp.Header))
		},
		"body": func() ref.Val { return jsonValue(resp.Body) },
	})
}

// identityValue is the identity map, or null for an anonymous exchange.
func identityValue(x *pipeline.Exchange) ref.Val {
	id := x.Identity
	if id == nil {
		return types.NullValue
	}
	claims := id.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{
		"subject":   id.Subject,
		"provider":  id.Provider,
		"kind":      string(id.Kind),
		"claims":    claims,
		"scopes":    nonNil(id.Scopes),
		"roles":     nonNil(id.Roles),
		"tenant":    id.Tenant,
		"client_id": id.ClientID,
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// headerMap lower-cases header names and joins repeated values with ", ".
func headerMap(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, vs := range h {
		k = strings.ToLower(k)
		if prev, ok := m[k]; ok {
			vs = append([]string{prev}, vs...)
		}
		m[k] = strings.Join(vs, ", ")
	}
	return m
}

// queryAll is every value of every query parameter, for rules that must
// see a repeated parameter (`request.query_all.customerId.all(c, c == x)`):
// an upstream may read the last value where queryMap keeps the first.
func queryAll(u *url.URL) map[string][]string {
	if u == nil || u.RawQuery == "" {
		return map[string][]string{}
	}
	q, _ := url.ParseQuery(u.RawQuery)
	return q
}

// queryMap keeps the first value of each query parameter: the common case
// of one value reads as `request.query.customerId`. Parameters that fail to
// parse are left out.
func queryMap(u *url.URL) map[string]string {
	if u == nil || u.RawQuery == "" {
		return map[string]string{}
	}
	q, _ := url.ParseQuery(u.RawQuery)
	m := make(map[string]string, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			m[k] = vs[0]
		}
	}
	return m
}
