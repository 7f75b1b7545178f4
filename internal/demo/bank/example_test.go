package bank_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/demo/bank"
)

// The demo runner serves the bank on loopback and puts the gateway in front,
// loading bank.Spec() as the API's contract.
func ExampleNew() {
	b := bank.New(bank.Options{Seed: 1})
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()

	c := b.Customers()[0]
	fmt.Println(c.Username, c.CustomerID)
	fmt.Println(b.Accounts(c.CustomerID)[0].AccountID, b.Accounts(c.CustomerID)[0].IBAN)
	fmt.Println(b.Cards(c.CustomerID)[0].CardID)

	user, pass := bank.Credentials(1)
	resp, err := http.Post(srv.URL+bank.BasePath+"/login", "application/json",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, user, pass)))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// customer1 cus_p6nia2g234zo
	// acc_z4al6t3b7dqc GB32BLWK20682186851208
	// card_3rj4drrfr5pd
	// 200 OK
}
