package inventory

import "testing"

func TestClassify(t *testing.T) {
	tests := []struct {
		seg  string
		want SegmentClass
	}{
		// Literal words and versions.
		{"", ClassEmpty},
		{"accounts", ClassWord},
		{"funds-confirmation", ClassWord},
		{"payment_details", ClassWord},
		{"current", ClassWord},
		{"deadbeef", ClassWord}, // hex letters only: a word
		{"international-scheduled-payment-consents", ClassWord},
		{"v1", ClassVersion},
		{"V2", ClassVersion},
		{"v4.0", ClassVersion},
		{"v1.2.3", ClassVersion},
		{"v1beta1", ClassVersion},
		{"v2alpha", ClassVersion},
		{"open-banking", ClassWord},
		// Other: neither a word nor an id.
		{"paymentDetails", ClassOther},
		{"report.csv", ClassOther},
		{"oauth2", ClassOther},
		{"oauth2-authorization-server", ClassOther},
		{"x509-certificates", ClassOther},
		{"api-v1beta1", ClassOther},
		{"top-10-products", ClassOther},
		{"abc12", ClassOther},
		{".well-known", ClassOther},
		{"utf8mb4", ClassOther},
		{"v1.", ClassOther},
		{"2fa-settings", ClassOther},
		// Obvious ids.
		{"42", ClassID},
		{"0", ClassID},
		{"9007199254740993", ClassID},
		{"3f6c1a2e-9b4d-4c8e-a1f2-7d5e6b8c9a01", ClassID},
		{"3F6C1A2E-9B4D-4C8E-A1F2-7D5E6B8C9A01", ClassID},
		{"8f3a29c1", ClassID},
		{"d41d8cd98f00b204e9800998ecf8427e", ClassID},                                 // md5
		{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ClassID}, // sha256
		{"507f1f77bcf86cd799439011", ClassID},                                         // Mongo ObjectID
		{"cus_NffrFeUfNV2Hib", ClassID},
		{"acct_1032D82eZvKYlo2C", ClassID},
		{"pi_3MtwBwLkdIwHu7ix28a3tqPa", ClassID},
		{"txn-000123", ClassID},
		{"cus_NffrFeUfNVaHib", ClassID}, // no digit, but random case
		{"get_userInfo", ClassOther},
		{"int_FQBINnedEVJEVE", ClassID},
		{"cus_abcdefgh", ClassWord},
		{"ord-2024-000123", ClassID},
		{"cns_8f3a29c1d7e40b5a", ClassID},
		{"2026-01-28", ClassID},
		{"2026-01-28T09:30:00Z", ClassID},
		{"jane.doe@example.com", ClassID},
		{"jane.doe%40example.com", ClassID},
		{"GB82WEST12345698765432", ClassID},
		{"DE89370400440532013000", ClassID},
		{"+14155552671", ClassID},
		{"4111-1111-1111-1111", ClassID},
		{"ORD123456", ClassID},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAV", ClassID}, // ULID
		{"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ClassID},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", ClassID},
		{"A7xK29pQ", ClassID},
		{"dBjftJeZmBuhbUJUprwWgFWFOEjXk", ClassID}, // base64url without digits
		{"internationalScheduledPaymentConsents", ClassOther},
		{"getAccountByIdAndName", ClassOther},
		// Templates.
		{"{id}", ClassTemplate},
		{"{AccountId}", ClassTemplate},
		{"{}", ClassOther},
		{"{a}{b}", ClassOther},
		{"{id}.json", ClassOther},
	}
	for _, tt := range tests {
		if got := Classify(tt.seg); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.seg, got, tt.want)
		}
	}
}

func TestDeriveName(t *testing.T) {
	tests := []struct {
		prev string
		word bool
		want string
	}{
		{"customers", true, "customerId"},
		{"categories", true, "categoryId"},
		{"addresses", true, "addressId"},
		{"batches", true, "batchId"},
		{"statuses", true, "statusId"},
		{"status", true, "statusId"},
		{"domestic-payments", true, "domesticPaymentId"},
		{"standing_orders", true, "standingOrderId"},
		{"paymentDetails", true, "paymentDetailId"},
		{"files", true, "fileId"},
		{"v1", false, "id"},
		{"", false, "id"},
		{"abc12", true, "id"},
	}
	for _, tt := range tests {
		if got := deriveName(tt.prev, tt.word); got != tt.want {
			t.Errorf("deriveName(%q) = %q, want %q", tt.prev, got, tt.want)
		}
	}
}
