package shape

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// ident "hashes" an id to itself, so tests can read what was found.
func ident(s string) string { return s }

func TestIDs(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"one resource", `{"id":"acc_1","name":"Main","balance":12.5}`, []string{"acc_1"}},
		{"list wrapper", `{"data":[{"id":1},{"id":2},{"id":2}],"next":"x"}`, []string{"1", "2"}},
		{"open banking", `{"Data":{"Account":[{"AccountId":"22289","Currency":"GBP"},{"AccountId":"31820"}]},"Links":{"Self":"/accounts"}}`,
			[]string{"22289", "31820"}},
		{"styles", `{"account_id":"a","customerID":"c","card-id":"d","paymentUuid":"e","order_uuid":"f","uuid":"g","@id":"h","_id":"i"}`,
			[]string{"a", "c", "d", "e", "f", "g", "h", "i"}},
		{"deep references not read", `{"id":"t1","merchant":{"details":{"site":{"id":"m1"}}}}`, []string{"t1"}},
		{"depth three", `{"a":{"b":{"id":"x","c":{"id":"too deep"}}}}`, []string{"x"}},
		{"arrays add no depth", `[[{"id":"x"}]]`, []string{"x"}},
		{"plumbing skipped", `{"requestId":"r","traceId":"t","client_id":"c","x-request-id":"x","IdempotencyKey":"k","id":"ok"}`, []string{"ok"}},
		{"not ids", `{"identity":"a","valid":"b","Id":"yes","paid":"c","ID":"same"}`, []string{"yes", "same"}},
		{"numbers", `{"id":12,"amountId":1.5,"x_id":1e3,"y_id":-7}`, []string{"12", "-7"}},
		{"empty and long strings", `{"id":"","other_id":"` + strings.Repeat("a", 200) + `"}`, nil},
		{"booleans and nulls", `{"id":true,"a_id":null,"b_id":{"id":"nested"}}`, []string{"nested"}},
		{"escaped", `{"i\u0064":"v\u0031"}`, []string{"v1"}},
		{"not json", `id=1`, nil},
		{"trailing data", `{"id":1} {"id":2}`, nil},
		{"scalar", `"id"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := IDs([]byte(tt.body), ident)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("IDs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIDsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%d}`, i)
	}
	b.WriteString("]")
	got := IDs([]byte(b.String()), ident)
	if len(got) != MaxIDs || got[0] != "0" || got[MaxIDs-1] != fmt.Sprint(MaxIDs-1) {
		t.Fatalf("%d ids (%q ... ), want the first %d", len(got), got[:3], MaxIDs)
	}
	deep := strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000)
	if got := IDs([]byte(deep), ident); got != nil {
		t.Fatalf("deep array: %q", got)
	}
}

func TestIDKey(t *testing.T) {
	for k, want := range map[string]bool{
		"id": true, "ID": true, "accountId": true, "AccountId": true, "account_id": true, "ACCOUNT_ID": true,
		"customerID": true, "card-id": true, "uuid": true, "paymentUuid": true, "guid": true, "v2Id": true,
		"Id": true, "idx": false, "valid": false, "paid": false, "UUID": true, "ABCID": false, "_ID": true,
		"requestId": false, "trace_id": false, "correlationId": false, "client_id": false, "sessionID": false,
		strings.Repeat("a", 70) + "Id": false, "": false,
	} {
		if got := IDKey(k); got != want {
			t.Errorf("IDKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func BenchmarkIDs(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"Data":{"Transaction":[`)
	for i := range 20 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"AccountId":"22289","TransactionId":"tx-%d","Amount":{"Amount":"10.00","Currency":"GBP"},"BookingDateTime":"2026-01-01T10:00:00Z","MerchantDetails":{"MerchantName":"Shop","MerchantId":"m%d"}}`, i, i)
	}
	sb.WriteString(`]}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		IDs(body, ident)
	}
}
