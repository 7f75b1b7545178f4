package bank

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Deterministic generation of the demo data. Customer n is generated from a
// PCG stream keyed by (seed, n), so it does not depend on how many customers
// the bank has; transactions are generated on demand from a per-account seed.

const (
	idAlphabet = "abcdefghijklmnopqrstuvwxyz234567" // RFC 4648 base32, lower case
	bankCode   = "BLWK"                             // IBAN bank identifier of the demo bank
)

var (
	firstNames = []string{"Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Freya", "Lily", "Sophia", "Priya",
		"Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Muhammad", "Oscar", "Tomasz",
		"Chidi", "Siobhan", "Aoife", "Rhys", "Callum", "Niamh", "Yusuf", "Mei", "Zara", "Dylan"}
	lastNames = []string{"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Khan",
		"O'Brien", "O'Neill", "McDonald", "Evans", "Thomas", "Roberts", "Walker", "Wright", "Nowak", "Okafor",
		"Hughes", "Edwards", "Green", "Hall", "Wood", "Clarke", "Chen", "Singh", "D'Souza", "Murphy"}
	streets = []string{"High Street", "Station Road", "Church Lane", "Victoria Road", "Park Avenue", "Mill Lane",
		"Queen's Road", "King Street", "Green Lane", "The Crescent", "Manor Road", "St John's Close"}
	cities = []struct{ name, outward string }{
		{"London", "SE1"}, {"London", "N7"}, {"Manchester", "M1"}, {"Birmingham", "B3"}, {"Leeds", "LS1"},
		{"Glasgow", "G2"}, {"Bristol", "BS1"}, {"Edinburgh", "EH1"}, {"Cardiff", "CF10"}, {"Belfast", "BT1"},
		{"Liverpool", "L1"}, {"Newcastle upon Tyne", "NE1"},
	}
	emailDomains = []string{"example.com", "example.org", "example.net"}
)

// Letters allowed in the two-letter prefix of a National Insurance number.
const (
	ninoFirst  = "ABCEGHJKLMNOPRSTWXYZ" // not D F I Q U V
	ninoSecond = "ABCEGHJKLMNPRSTWXYZ"  // not D F I O Q U V
	postcodeIn = "ABDEFGHJLNPQRSTUWXYZ"
)

var ninoBadPrefixes = []string{"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}

type generator struct {
	seed uint64
	ids  map[string]bool // every generated id, IBAN, PAN and email
}

func (b *Bank) generate(n int) {
	g := &generator{seed: b.seed, ids: make(map[string]bool, 8*n)}
	b.customers = make([]Customer, 0, n)
	for i := 1; i <= n; i++ {
		rng := rand.New(rand.NewPCG(b.seed, uint64(i)))
		c := g.customer(rng, i)
		b.customerBy[c.CustomerID] = len(b.customers)
		b.usernameBy[c.Username] = len(b.customers)
		b.customers = append(b.customers, c)

		current := g.account(rng, c, "CurrentAccount", "GBP")
		accts := []*Account{current}
		if rng.IntN(10) < 7 {
			accts = append(accts, g.account(rng, c, "Savings", "GBP"))
		}
		if rng.IntN(10) < 2 {
			accts = append(accts, g.account(rng, c, "CurrentAccount", "EUR"))
		}
		for _, a := range accts {
			b.accountBy[a.AccountID] = a
			b.accounts = append(b.accounts, a)
		}

		cards := []Card{g.card(rng, c, current, "Visa", "Debit")}
		if rng.IntN(2) == 0 {
			cards = append(cards, g.card(rng, c, current, "Mastercard", "Credit"))
		}
		for _, cd := range cards {
			b.cardBy[cd.CardID] = len(b.cards)
			b.cards = append(b.cards, cd)
		}
	}
}

// unique draws values until one is new.
func (g *generator) unique(draw func() string) string {
	for {
		v := draw()
		if !g.ids[v] {
			g.ids[v] = true
			return v
		}
	}
}

func randomID(rng *rand.Rand, prefix string) string {
	var sb strings.Builder
	sb.WriteString(prefix)
	for range 12 {
		sb.WriteByte(idAlphabet[rng.IntN(len(idAlphabet))])
	}
	return sb.String()
}

func digits(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + rng.IntN(10))
	}
	return string(b)
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// between returns a time uniformly in [from, to), truncated to the second.
func between(rng *rand.Rand, from, to time.Time) time.Time {
	return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from))))).Truncate(time.Second)
}

func (g *generator) customer(rng *rand.Rand, n int) Customer {
	first, last := pick(rng, firstNames), pick(rng, lastNames)
	user, _ := Credentials(n)
	local := strings.ToLower(first + "." + strings.ReplaceAll(last, "'", ""))
	domain := pick(rng, emailDomains)
	email := local + "@" + domain
	if g.ids[email] {
		email = fmt.Sprintf("%s%d@%s", local, n, domain)
	}
	g.ids[email] = true
	city := pick(rng, cities)
	addr := Address{
		Line1:    fmt.Sprintf("%d %s", 1+rng.IntN(180), pick(rng, streets)),
		City:     city.name,
		Postcode: fmt.Sprintf("%s %d%c%c", city.outward, rng.IntN(10), postcodeIn[rng.IntN(len(postcodeIn))], postcodeIn[rng.IntN(len(postcodeIn))]),
		Country:  "GB",
	}
	if rng.IntN(4) == 0 {
		addr.Line2 = fmt.Sprintf("Flat %d", 1+rng.IntN(40))
	}
	dob := between(rng, time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC))
	return Customer{
		CustomerID:              g.unique(func() string { return randomID(rng, "cus_") }),
		Username:                user,
		FirstName:               first,
		LastName:                last,
		Email:                   email,
		Phone:                   "+447700900" + digits(rng, 3), // Ofcom drama range
		DateOfBirth:             dob.Format(time.DateOnly),
		NationalInsuranceNumber: nino(rng),
		Address:                 addr,
		CreatedAt:               between(rng, time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), AsOf.AddDate(0, -6, 0)).Format(time.RFC3339),
	}
}

// nino returns a well-formed UK National Insurance number, e.g. "AB123456C".
func nino(rng *rand.Rand) string {
	for {
		p := string([]byte{ninoFirst[rng.IntN(len(ninoFirst))], ninoSecond[rng.IntN(len(ninoSecond))]})
		if slices.Contains(ninoBadPrefixes, p) {
			continue
		}
		return p + digits(rng, 6) + string(rune('A'+rng.IntN(4)))
	}
}

func (g *generator) account(rng *rand.Rand, c Customer, subType, currency string) *Account {
	a := &Account{
		AccountID:      g.unique(func() string { return randomID(rng, "acc_") }),
		CustomerID:     c.CustomerID,
		AccountType:    "Personal",
		AccountSubType: subType,
		Currency:       currency,
		Status:         "Enabled",
		OpenedAt:       between(rng, time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), AsOf.AddDate(0, -4, 0)).Format(time.RFC3339),
	}
	a.IBAN = g.unique(func() string {
		a.SortCode = fmt.Sprintf("20-%s-%s", digits(rng, 2), digits(rng, 2))
		a.AccountNumber = string(rune('1'+rng.IntN(9))) + digits(rng, 7)
		return gbIBAN(strings.ReplaceAll(a.SortCode, "-", ""), a.AccountNumber)
	})
	switch subType {
	case "Savings":
		a.balanceMinor = 50000 + rng.Int64N(5000000)
	default:
		a.balanceMinor = 5000 + rng.Int64N(800000)
	}
	if rng.IntN(20) == 0 {
		a.Status = "Disabled"
	}
	a.Balance = Money{Amount: formatMinor(a.balanceMinor), Currency: currency}
	a.txSeed = rng.Uint64()
	return a
}

// gbIBAN builds a GB IBAN for the demo bank with valid mod-97 check digits.
func gbIBAN(sortCode, accountNumber string) string {
	bban := bankCode + sortCode + accountNumber
	check := 98 - ibanMod97(bban+"GB00")
	return fmt.Sprintf("GB%02d%s", check, bban)
}

// ibanMod97 converts letters to numbers (A=10 ... Z=35) and returns the
// value modulo 97, as ISO 13616 prescribes. s holds upper-case letters and digits.
func ibanMod97(s string) int {
	var num strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			fmt.Fprintf(&num, "%d", r-'A'+10)
		} else {
			num.WriteRune(r)
		}
	}
	v, ok := new(big.Int).SetString(num.String(), 10)
	if !ok {
		return -1
	}
	return int(new(big.Int).Mod(v, big.NewInt(97)).Int64())
}

// validIBAN reports whether s (no spaces) is a structurally valid IBAN with
// correct check digits.
func validIBAN(s string) bool {
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	for i, r := range s {
		switch {
		case i < 2 && r >= 'A' && r <= 'Z':
		case i >= 2 && i < 4 && r >= '0' && r <= '9':
		case i >= 4 && (r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return ibanMod97(s[4:]+s[:4]) == 1
}

func (g *generator) card(rng *rand.Rand, c Customer, a *Account, brand, typ string) Card {
	pan := g.unique(func() string {
		var prefix string
		switch brand {
		case "Visa":
			prefix = "4" + digits(rng, 5)
		default: // Mastercard: 51-55 or 2221-2720
			if rng.IntN(3) == 0 {
				prefix = fmt.Sprintf("%04d", 2221+rng.IntN(2720-2221+1)) + digits(rng, 2)
			} else {
				prefix = fmt.Sprintf("5%d", 1+rng.IntN(5)) + digits(rng, 4)
			}
		}
		body := prefix + digits(rng, 15-len(prefix))
		return body + string(rune('0'+luhnCheckDigit(body)))
	})
	status := "Active"
	if rng.IntN(10) == 0 {
		status = "Blocked"
	}
	return Card{
		CardID:         g.unique(func() string { return randomID(rng, "card_") }),
		CustomerID:     c.CustomerID,
		AccountID:      a.AccountID,
		Brand:          brand,
		Type:           typ,
		PAN:            pan,
		Expiry:         fmt.Sprintf("%02d/%02d", 1+rng.IntN(12), 26+rng.IntN(5)),
		CardholderName: strings.ToUpper(c.FirstName + " " + c.LastName),
		Status:         status,
	}
}

// luhnCheckDigit returns the digit that makes body+digit pass the Luhn check.
func luhnCheckDigit(body string) int {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-i)%2 == 1 { // doubled positions, counted from the check digit
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}

func formatMinor(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%02d", sign, m/100, m%100)
}

// Transactions ------------------------------------------------------------

type txKind struct {
	merchant  string
	credit    bool
	minMinor  int64
	maxMinor  int64
	reference string // fmt verb %s gets the month ("Jan"), %d a number
}

var purchases = []txKind{
	{"Tesco", false, 450, 12000, "Card payment"},
	{"Sainsbury's", false, 350, 9500, "Card payment"},
	{"Pret A Manger", false, 320, 1500, "Card payment"},
	{"Transport for London", false, 175, 980, "TfL travel charge"},
	{"Amazon UK", false, 799, 19999, "Order 204-%d"},
	{"Deliveroo", false, 1200, 4500, "Card payment"},
	{"Marks & Spencer", false, 500, 8000, "Card payment"},
	{"Caffè Nero", false, 250, 800, "Card payment"},
	{"Boots", false, 300, 4000, "Card payment"},
	{"British Gas", false, 4500, 15000, "DD British Gas %d"},
	{"Thames Water", false, 2500, 6000, "DD Thames Water"},
	{"Ms A. O'Neill", true, 1000, 8000, "Dinner split - thanks!"},
	{"HMRC", true, 5000, 60000, "Tax refund"},
}

type monthlyTx struct {
	k   txKind
	day int
}

// transactions generates the account's transactions, newest first: monthly
// salary and rent (or savings transfers and interest) plus random card spend.
func (b *Bank) transactions(a *Account) []Transaction {
	rng := rand.New(rand.NewPCG(a.txSeed, b.seed^0x9e3779b97f4a7c15))
	from := AsOf.AddDate(0, 0, -90)
	var out []Transaction
	add := func(k txKind, at time.Time, minor int64) {
		ref := k.reference
		switch {
		case strings.Contains(ref, "%s"):
			ref = fmt.Sprintf(ref, at.Format("Jan"))
		case strings.Contains(ref, "%d"):
			ref = fmt.Sprintf(ref, 1000000+rng.IntN(9000000))
		}
		signed := -minor
		ind := "Debit"
		if k.credit {
			signed, ind = minor, "Credit"
		}
		out = append(out, Transaction{
			TransactionID:        uuid(rng),
			AccountID:            a.AccountID,
			Amount:               formatMinor(minor),
			Currency:             a.Currency,
			CreditDebitIndicator: ind,
			Status:               "Booked",
			BookingDateTime:      at.Format(time.RFC3339),
			MerchantName:         k.merchant,
			Reference:            ref,
			minor:                signed,
			booked:               at,
		})
	}
	amount := func(k txKind) int64 { return k.minMinor + rng.Int64N(k.maxMinor-k.minMinor+1) }
	for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC); m.Before(AsOf); m = m.AddDate(0, 1, 0) {
		hour := time.Duration(6+rng.IntN(4)) * time.Hour
		monthly := []monthlyTx{
			{txKind{"ACME Widgets Ltd", true, 180000, 420000, "Salary %s"}, 25},
			{txKind{"J. O'Brien", false, 65000, 120000, "O'Brien rent %s"}, 1},
		}
		if a.AccountSubType == "Savings" {
			monthly = []monthlyTx{
				{txKind{"Transfer from current account", true, 5000, 50000, "Monthly savings %s"}, 26},
				{txKind{"Bulwark Bank", true, 100, 4000, "Interest %s"}, 28},
			}
		}
		for _, e := range monthly {
			at := time.Date(m.Year(), m.Month(), e.day, 0, 0, 0, 0, time.UTC).Add(hour)
			if at.Before(from) || !at.Before(AsOf) {
				continue
			}
			add(e.k, at, amount(e.k))
		}
	}
	if a.AccountSubType != "Savings" {
		for range 20 + rng.IntN(21) {
			k := pick(rng, purchases)
			add(k, between(rng, from, AsOf), amount(k))
		}
	}
	slices.SortStableFunc(out, func(x, y Transaction) int {
		if c := y.booked.Compare(x.booked); c != 0 {
			return c
		}
		return strings.Compare(x.TransactionID, y.TransactionID)
	})
	return out
}

// uuid returns a random (version 4) UUID drawn from rng.
func uuid(rng *rand.Rand) string {
	var u [16]byte
	for i := 0; i < 16; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
