package gateway

import (
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	"github.com/bulwarkapi/bulwark/internal/spec"
	"github.com/bulwarkapi/bulwark/internal/stage/authz"
)

// addAuthz builds the authorization stage of one API when it has object
// rules, business rules or an authorize block. CEL compile errors are
// reported at the line of the expression in the config.
func addAuthz(req map[string]pipeline.Stage, resp map[string]pipeline.ResponseStage, env *policy.Env, a config.API, doc *spec.Document, fail func(string, error), p string) {
	if len(a.Objects) == 0 && len(a.Rules) == 0 && a.Authorize == nil {
		return
	}
	st, err := authz.New(authz.Options{API: a.Name, Spec: doc, Objects: a.Objects, Rules: a.Rules, Authorize: a.Authorize, Env: env})
	if err != nil {
		failLocated(fail, p, "authorize", err)
		return
	}
	req[a.Name] = st
	if st.HasResponseRules() {
		resp[a.Name] = st
	}
}

// unjoin flattens an errors.Join tree.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}
