package policy

import (
	"context"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// fuzzExprs touch the body in every way an authorization rule does: field
// access, nesting, membership, conversion, comprehension, optional access,
// and whole-value comparison.
var fuzzExprs = []string{
	`params.AccountId in identity.claims.account_ids`,
	`request.body.debtorAccountId in identity.claims.account_ids`,
	`request.body.Data.Initiation.DebtorAccount.Identification in identity.claims.account_ids`,
	`operation == 'POST /domestic-payments' && double(request.body.Amount) > 10000.0 && !('mfa' in identity.claims.amr)`,
	`request.body == null`,
	`has(request.body.a) && request.body.a == 1`,
	`request.body.?items.orValue([]).exists(i, i.id == identity.subject)`,
	`request.body.all(k, k == 'x')`,
	`string(request.body) == '{}'`,
	`request == {'body': null}`,
	`size(request.body) > 3`,
}

// FuzzActivationBody feeds arbitrary bytes as the request body through
// NewActivation and Eval: any outcome but a panic is fine.
func FuzzActivationBody(f *testing.F) {
	env := testEnv(f)
	progs := make([]*Program, 0, len(fuzzExprs))
	for _, e := range fuzzExprs {
		p, err := env.Compile(e, Request)
		if err != nil {
			f.Fatalf("compile %q: %v", e, err)
		}
		progs = append(progs, p)
	}
	resp, err := env.Compile(`response.body.customerId == identity.subject && request.body.x == response.body.x`, Response)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"debtorAccountId":"acc-1","Amount":20000}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		x := exchange("POST", "/domestic-payments", string(body), customerA(),
			pipeline.Param{Name: "AccountId", Value: "acc-1"})
		x.Operation = "POST /domestic-payments"
		a, err := NewActivation(Input{Exchange: x})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range progs {
			_, _ = p.Eval(context.Background(), a)
		}
		ra, err := NewActivation(Input{Exchange: x, Response: &ResponseInput{Status: 200, Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = resp.Eval(context.Background(), ra)
	})
}
