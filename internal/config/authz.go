package config

import (
	"fmt"
	"strings"
)

// ObjectRule is object-level authorization (BOLA) for one operation: an
// allow expression over the request, and an owner expression over the
// response, both in CEL.
type ObjectRule struct {
	Operation string `yaml:"operation"`
	// Allow is evaluated before the upstream is called; false is 403.
	Allow string `yaml:"allow"`
	// Owner is evaluated on the response before it leaves; false is 403.
	Owner string `yaml:"owner"`
	// ID is a CEL expression (a string) for the object id recorded, as a
	// hash, on the exchange; default: the operation's last path parameter.
	ID string `yaml:"id"`
}

// BusinessRule is a custom check in CEL.
type BusinessRule struct {
	Name string `yaml:"name"`
	// Operation limits the rule to one operation; empty: every operation.
	Operation string `yaml:"operation"`
	When      string `yaml:"when"`
	// Action is block (403), flag (record only) or step_up (401
	// insufficient_user_authentication, RFC 9470).
	Action string `yaml:"action"`
}

// Access are the roles and scopes one operation requires (BFLA), on top of
// the spec's security requirements.
type Access struct {
	Operation string   `yaml:"operation"`
	Roles     []string `yaml:"roles"`
	Scopes    []string `yaml:"scopes"`
}

// Authorize holds function-level authorization and the authorization
// stage's own mode.
type Authorize struct {
	Mode string `yaml:"mode"`
	// AdminRoles may call administrative operations: those the spec marks
	// x-bulwark-admin: true, and AdminOperations. Anyone else gets 403.
	AdminRoles      []string `yaml:"admin_roles"`
	AdminOperations []string `yaml:"admin_operations"`
	// TenantParam names a path or query parameter that must equal the
	// caller's tenant (tenant isolation in one line).
	TenantParam string   `yaml:"tenant_param"`
	Access      []Access `yaml:"access"`
}

var ruleActions = []string{"block", "flag", "step_up"}

func (c *Config) validateAuthz(add func(string, string, ...any)) {
	for i, a := range c.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		if (len(a.Objects) > 0 || a.Authorize != nil) && len(a.Authenticate) == 0 {
			add(p+".authenticate", "object rules and authorize need authenticated requests: set authenticate")
		}
		for j, o := range a.Objects {
			op := fmt.Sprintf("%s.objects[%d]", p, j)
			if !validOperationKey(o.Operation) {
				add(op+".operation", "must be an operation such as \"GET /accounts/{AccountId}\", got %q", clip(o.Operation))
			}
			if strings.TrimSpace(o.Allow) == "" && strings.TrimSpace(o.Owner) == "" {
				add(op, "needs allow, owner, or both")
			}
		}
		names := map[string]bool{}
		for j, r := range a.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", p, j)
			switch {
			case r.Name == "":
				add(rp+".name", "required: the name appears in the audit log and the 403")
			case !validName(r.Name):
				add(rp+".name", "must be letters, digits, '-', '_' or '.', at most 64 characters")
			case names[r.Name]:
				add(rp+".name", "duplicate rule name %q", r.Name)
			}
			names[r.Name] = true
			if strings.TrimSpace(r.When) == "" {
				add(rp+".when", "required: a CEL expression that is true when the rule applies")
			}
			if !contains(ruleActions, r.Action) {
				add(rp+".action", "must be block, flag or step_up, got %q", clip(r.Action))
			}
			if r.Operation != "" && !validOperationKey(r.Operation) {
				add(rp+".operation", "must be an operation such as \"POST /payments\", got %q", clip(r.Operation))
			}
		}
		if az := a.Authorize; az != nil {
			checkMode(add, p+".authorize.mode", az.Mode)
			for j, op := range az.AdminOperations {
				if !validOperationKey(op) {
					add(fmt.Sprintf("%s.authorize.admin_operations[%d]", p, j), "must be an operation such as \"GET /admin/customers\", got %q", clip(op))
				}
			}
			for j, ac := range az.Access {
				ap := fmt.Sprintf("%s.authorize.access[%d]", p, j)
				if !validOperationKey(ac.Operation) {
					add(ap+".operation", "must be an operation such as \"DELETE /accounts/{AccountId}\", got %q", clip(ac.Operation))
				}
				if len(ac.Roles) == 0 && len(ac.Scopes) == 0 {
					add(ap, "needs roles, scopes, or both")
				}
			}
		}
	}
}
