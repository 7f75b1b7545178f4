package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// body1KiB is a payment initiation padded to 1 KiB.
func body1KiB() string {
	head := `{"debtorAccountId":"acc-1","Amount":250,"Data":{"Initiation":{"DebtorAccount":{"Identification":"acc-1"}}},"Remittance":"`
	tail := `"}`
	return head + strings.Repeat("x", 1024-len(head)-len(tail)) + tail
}

// BenchmarkEval measures one BOLA allow decision per request: a new
// exchange and activation, then Eval. "path" reads only the path parameter
// (the body stays unread); "body" decodes the 1 KiB JSON body.
func BenchmarkEval(b *testing.B) {
	env := testEnv(b)
	body := body1KiB()
	if len(body) != 1024 {
		b.Fatalf("body is %d bytes", len(body))
	}
	for _, bc := range []struct{ name, expr string }{
		{"path", `params.AccountId in identity.claims.account_ids`},
		{"body", `request.body.debtorAccountId in identity.claims.account_ids`},
		{"nested", `request.body.Data.Initiation.DebtorAccount.Identification in identity.claims.account_ids`},
	} {
		p, err := env.Compile(bc.expr, Request)
		if err != nil {
			b.Fatal(err)
		}
		id := customerA()
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x := exchange("POST", "/accounts/acc-1", body, id, pipeline.Param{Name: "AccountId", Value: "acc-1"})
				a, err := NewActivation(Input{Exchange: x})
				if err != nil {
					b.Fatal(err)
				}
				ok, err := p.Eval(context.Background(), a)
				if err != nil || !ok {
					b.Fatal(fmt.Sprint(ok, err))
				}
			}
		})
	}
}

// BenchmarkExchange is the cost of building the test exchange alone, to
// subtract from BenchmarkEval.
func BenchmarkExchange(b *testing.B) {
	body := body1KiB()
	id := customerA()
	b.ReportAllocs()
	for b.Loop() {
		_ = exchange("POST", "/accounts/acc-1", body, id, pipeline.Param{Name: "AccountId", Value: "acc-1"})
	}
}
