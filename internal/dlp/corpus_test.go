package dlp

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files under testdata")

// label is one true piece of sensitive data in a corpus file, exactly as it
// appears in the file.
type label struct {
	Class Class  `json:"class"`
	Value string `json:"value"`
}

const corpusDir = "testdata/corpus"

// gen builds the labelled corpus deterministically. True positives are
// generated with valid checksums; hard negatives are built to look like
// them (Luhn-failing runs, order numbers, epoch-ms timestamps, UUIDs,
// amounts, account numbers, sort codes, tracking numbers, ISBNs, IBAN-shaped
// strings with bad checksums or lengths) and carry no label.
type gen struct {
	r      *rand.Rand
	files  map[string]*bytes.Buffer
	labels map[string][]label
}

func (g *gen) digits(n int) string {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte('0' + g.r.IntN(10))
	}
	return string(b)
}

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func luhnDigit(body string) byte {
	for c := byte('0'); c <= '9'; c++ {
		if Luhn([]byte(body + string(c))) {
			return c
		}
	}
	panic("unreachable")
}

type brand struct {
	prefixes []string
	lengths  []int
}

var brands = []brand{
	{[]string{"4"}, []int{16, 16, 16, 13, 19}},                                  // Visa
	{[]string{"51", "52", "53", "54", "55", "2221", "2500", "2720"}, []int{16}}, // Mastercard
	{[]string{"34", "37"}, []int{15}},                                           // Amex
	{[]string{"6011", "644", "645", "649", "65"}, []int{16, 19}},                // Discover
	{[]string{"3528", "3550", "3589"}, []int{16}},                               // JCB
	{[]string{"36", "300", "305", "38"}, []int{14}},                             // Diners
	{[]string{"62"}, []int{16, 19}},                                             // UnionPay
	{[]string{"50", "56", "58", "67", "69"}, []int{13, 16, 19}},                 // Maestro
}

// pan returns a valid card number and its display form.
func (g *gen) pan() string {
	b := brands[g.r.IntN(len(brands))]
	p, n := g.pick(b.prefixes), b.lengths[g.r.IntN(len(b.lengths))]
	body := p + g.digits(n-1-len(p))
	d := body + string(luhnDigit(body))
	if strings.Count(d, d[:1]) == len(d) {
		return g.pan()
	}
	return g.format(d)
}

func (g *gen) format(d string) string {
	sep := g.pick([]string{"", "", " ", "-"})
	if sep == "" || len(d) == 13 {
		return d
	}
	var groups []int
	switch len(d) {
	case 15:
		groups = []int{4, 6, 5}
	case 14:
		groups = []int{4, 6, 4}
	default:
		for k := 0; k < len(d); k += 4 {
			groups = append(groups, min(4, len(d)-k))
		}
	}
	var parts []string
	k := 0
	for _, n := range groups {
		parts = append(parts, d[k:k+n])
		k += n
	}
	return strings.Join(parts, sep)
}

var ibanCountries = []string{"DE", "GB", "FR", "ES", "IT", "NL", "BE", "AT", "CH", "PL", "PT", "SE", "NO", "DK", "FI",
	"IE", "LU", "CZ", "SK", "HU", "RO", "BG", "HR", "SI", "GR", "CY", "MT", "LT", "LV", "EE", "SA", "AE", "TR", "BR", "IL", "QA"}

// iban returns a valid IBAN in electronic form.
func (g *gen) iban() string {
	cc := g.pick(ibanCountries)
	n := IBANLength(cc) - 4
	var bban string
	switch cc {
	case "GB", "NL", "IE", "MT", "BG", "QA":
		bban = string([]byte{byte('A' + g.r.IntN(26)), byte('A' + g.r.IntN(26)), byte('A' + g.r.IntN(26)), byte('A' + g.r.IntN(26))}) + g.digits(n-4)
	default:
		bban = g.digits(n)
	}
	r := ibanMod97([]byte(cc + "00" + bban))
	return fmt.Sprintf("%s%02d%s", cc, 98-r, bban)
}

func printIBAN(s string) string {
	var parts []string
	for k := 0; k < len(s); k += 4 {
		parts = append(parts, s[k:min(len(s), k+4)])
	}
	return strings.Join(parts, " ")
}

// ibanForm returns a valid IBAN in electronic or print form.
func (g *gen) ibanForm() string {
	if s := g.iban(); g.r.IntN(2) == 0 {
		return s
	} else {
		return printIBAN(s)
	}
}

func (g *gen) badIBAN() string {
	s := []byte(g.iban())
	if g.r.IntN(2) == 0 {
		s[2], s[3] = s[3], s[2] // bad checksum (when the digits differ)
		if s[2] == s[3] {
			s[3] = '0' + (s[3]-'0'+1)%10
		}
		if IBANValid(string(s)) {
			s[len(s)-1] = '0' + (s[len(s)-1]-'0'+3)%10
		}
		return string(s)
	}
	return string(s[:len(s)-1]) // wrong length
}

func (g *gen) badPAN() string {
	for {
		b := brands[g.r.IntN(len(brands))]
		p, n := g.pick(b.prefixes), b.lengths[0]
		d := p + g.digits(n-len(p))
		if !Luhn([]byte(d)) {
			return g.format(d)
		}
	}
}

// nonBrand is a Luhn-valid 16-digit number outside every card range.
func (g *gen) nonBrand() string {
	body := g.pick([]string{"1", "7", "8", "9"}) + g.digits(14)
	return body + string(luhnDigit(body))
}

func (g *gen) uuid() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 36)
	for k := range b {
		b[k] = hex[g.r.IntN(16)]
	}
	b[8], b[13], b[18], b[23], b[14] = '-', '-', '-', '-', '4'
	return string(b)
}

func (g *gen) epochMS() string { return "17" + g.digits(11) }

func (g *gen) ssn() string {
	for {
		a, gr, s := 1+g.r.IntN(899), 1+g.r.IntN(99), 1+g.r.IntN(9999)
		if a != 666 {
			return fmt.Sprintf("%03d-%02d-%04d", a, gr, s)
		}
	}
}

func (g *gen) aba() string {
	for {
		d := g.pick([]string{"01", "02", "11", "12", "21", "26", "31", "32", "61", "71", "80"}) + g.digits(6)
		for c := byte('0'); c <= '9'; c++ {
			v := d + string(c)
			if detectABA([]byte(v), 0, 9) == 9 {
				return v
			}
		}
	}
}

func (g *gen) email() string {
	return strings.ToLower(g.pick(firstNames)) + "." + strings.ToLower(g.pick(lastNames)) + strconv.Itoa(g.r.IntN(100)) + "@" + g.pick([]string{"example.com", "bank.example.co.uk", "mail.example.org"})
}

func (g *gen) phone() string {
	return g.pick([]string{"+44 20 7946 " + g.digits(4), "+1 (555) 01" + g.digits(1) + "-" + g.digits(4), "+4930" + g.digits(7), "+33 1 23 45 " + g.digits(2) + " " + g.digits(2)})
}

func (g *gen) nino() string {
	return g.pick([]string{"AB", "CE", "JG", "PR", "SW", "WL"}) + g.digits(6) + g.pick([]string{"A", "B", "C", "D"})
}

var (
	firstNames = []string{"Olivia", "Liam", "Emma", "Noah", "Amelie", "Lucas", "Sofia", "Mateo", "Zoe", "Siobhan"}
	lastNames  = []string{"Smith", "Mueller", "Garcia", "Rossi", "Dubois", "Nowak", "Jansen", "Kowalski", "Silva", "OBrien"}
	bics       = []string{"DEUTDEFF", "BNPAFRPP", "COBADEFFXXX", "HSBCGB2L", "CHASUS33", "NWBKGB2L", "INGBNL2A", "UBSWCHZH80A"}
	bicDigit   = []string{"HSBCGB2L", "CHASUS33", "NWBKGB2L", "INGBNL2A", "COBADEFFXXX", "UBSWCHZH80A"}
)

func (g *gen) add(file string, class Class, value string) string {
	g.labels[file] = append(g.labels[file], label{class, value})
	return value
}

func (g *gen) buf(file string) *bytes.Buffer {
	if g.files[file] == nil {
		g.files[file] = &bytes.Buffer{}
	}
	return g.files[file]
}

// jsonField writes "key": value, quoting unless raw.
func jf(key, value string, raw bool) string {
	if raw {
		return fmt.Sprintf("%q: %s", key, value)
	}
	return fmt.Sprintf("%q: %q", key, value)
}

func generateCorpus() (map[string][]byte, map[string][]label) {
	g := &gen{r: rand.New(rand.NewPCG(2026, 4)), files: map[string]*bytes.Buffer{}, labels: map[string][]label{}}

	// payments.json: card payments and transfers.
	f := "payments.json"
	b := g.buf(f)
	b.WriteString("{\"payments\": [\n")
	for k := 0; k < 110; k++ {
		if k > 0 {
			b.WriteString(",\n")
		}
		var fields []string
		fields = append(fields, jf("paymentId", g.uuid(), false), jf("createdAtMs", g.epochMS(), true),
			jf("amount", fmt.Sprintf("%d.%02d", g.r.IntN(20000), g.r.IntN(100)), true), jf("currency", g.pick([]string{"EUR", "GBP", "USD"}), false))
		switch k % 3 {
		case 0:
			if k%2 == 0 {
				d := strings.NewReplacer(" ", "", "-", "").Replace(g.pan())
				fields = append(fields, jf("cardNumber", g.add(f, PAN, d), true))
			} else {
				fields = append(fields, jf("cardNumber", g.add(f, PAN, g.pan()), false))
			}
			if k%5 == 0 {
				fields = append(fields, jf("cvv", g.add(f, PAN, g.digits(3)), false))
			}
			fields = append(fields, jf("orderNumber", g.badPAN(), false), jf("merchantRef", g.nonBrand(), false))
		case 1:
			fields = append(fields, jf("debtorIban", g.add(f, IBAN, g.ibanForm()), false),
				jf("creditorIban", g.add(f, IBAN, g.ibanForm()), false),
				jf("bic", g.add(f, SWIFTBIC, g.pick(bics)), false),
				jf("reference", "Invoice "+g.badIBAN()+" / "+g.digits(8), false))
		default:
			fields = append(fields, jf("accountNumber", g.digits(8), false), jf("sortCode", g.digits(2)+"-"+g.digits(2)+"-"+g.digits(2), false),
				jf("trackingNumber", "1Z"+g.digits(3)+"AA1"+g.digits(10), false), jf("orderNumber", "ORD-2026-"+g.digits(8), false),
				jf("description", "Book ISBN 978-3-16-"+g.digits(6)+"-0 ("+"978"+g.digits(10)+")", false),
				jf("card", g.add(f, PAN, g.pan()), false))
		}
		b.WriteString("  {" + strings.Join(fields, ", ") + "}")
	}
	b.WriteString("\n]}\n")

	// customers.json: customer records.
	f = "customers.json"
	b = g.buf(f)
	b.WriteString("[\n")
	for k := 0; k < 40; k++ {
		if k > 0 {
			b.WriteString(",\n")
		}
		fields := []string{jf("customerId", g.uuid(), false), jf("name", g.pick(firstNames)+" "+g.pick(lastNames), false),
			jf("email", g.add(f, Email, g.email()), false), jf("phone", g.add(f, Phone, g.phone()), false),
			jf("createdAt", fmt.Sprintf("2026-%02d-%02dT%02d:%02d:00Z", 1+g.r.IntN(12), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60)), false),
			jf("status", g.pick([]string{"ACTIVE", "CUSTOMER", "ACCEPTED", "SUSPENDED"}), false)}
		switch k % 4 {
		case 0:
			fields = append(fields, jf("ssn", g.add(f, USSSN, g.ssn()), false), jf("routingNumber", g.add(f, ABARouting, g.aba()), false))
		case 1:
			fields = append(fields, jf("socialSecurityNumber", g.add(f, USSSN, strings.ReplaceAll(g.ssn(), "-", "")), false), jf("accountNumber", g.digits(9), false))
		case 2:
			fields = append(fields, jf("nino", g.add(f, UKNINO, g.nino()), false), jf("lastLoginIp", g.add(f, IPAddress, fmt.Sprintf("192.0.2.%d", 1+g.r.IntN(254))), false))
		default:
			fields = append(fields, jf("iban", g.add(f, IBAN, g.ibanForm()), false), jf("cards", "["+strings.Join([]string{
				fmt.Sprintf("%q", g.add(f, PAN, g.pan())), fmt.Sprintf("%q", g.add(f, PAN, g.pan()))}, ", ")+"]", true))
		}
		b.WriteString("  {" + strings.Join(fields, ", ") + "}")
	}
	b.WriteString("\n]\n")

	// messages.txt: support messages and statements in free text.
	f = "messages.txt"
	b = g.buf(f)
	for k := 0; k < 150; k++ {
		switch k % 6 {
		case 0:
			fmt.Fprintf(b, "Customer %s %s reports card %s was charged EUR %d.%02d on 2026-03-%02d; order %s.\n",
				g.pick(firstNames), g.pick(lastNames), g.add(f, PAN, g.pan()), g.r.IntN(900), g.r.IntN(100), 1+g.r.IntN(28), g.badPAN())
		case 1:
			fmt.Fprintf(b, "Please transfer %d.00 GBP to %s (ref %s), not to %s.\n", g.r.IntN(9000), g.add(f, IBAN, g.ibanForm()), g.digits(10), g.badIBAN())
		case 2:
			fmt.Fprintf(b, "Refund to %s and %s, tracking %s, timestamp %s, id %s.\n", g.add(f, PAN, g.pan()), g.add(f, IBAN, g.ibanForm()), "9400"+g.digits(18), g.epochMS(), g.uuid())
		case 3:
			fmt.Fprintf(b, "Call us on 020 7946 %s or %s. Account %s, sort code %s-%s-%s, amount %s.%s.\n",
				g.digits(4), g.add(f, Phone, g.phone()), g.digits(8), g.digits(2), g.digits(2), g.digits(2), g.digits(5), g.digits(2))
		case 4:
			fmt.Fprintf(b, "Reference numbers: %s, %s, %s, ISBN 978-%s; not cards.\n", g.nonBrand(), g.badPAN(), strings.Repeat(g.digits(1), 16), g.digits(10))
		default:
			fmt.Fprintf(b, "Wire via %s to %s, SSN on file %s, contact %s.\n", g.add(f, SWIFTBIC, g.pick(bicDigit)), g.add(f, IBAN, g.ibanForm()), g.add(f, USSSN, g.ssn()), g.add(f, Email, g.email()))
		}
	}

	// statements.txt: card numbers in every supported layout.
	f = "statements.txt"
	b = g.buf(f)
	for k := 0; k < 70; k++ {
		fmt.Fprintf(b, "%s | %s | %s | %d.%02d | %s\n", g.add(f, PAN, g.pan()), g.uuid(), g.add(f, IBAN, g.ibanForm()), g.r.IntN(5000), g.r.IntN(100), g.epochMS())
	}

	// negatives.json: hard negatives only.
	f = "negatives.json"
	b = g.buf(f)
	b.WriteString("{\"records\": [\n")
	for k := 0; k < 120; k++ {
		if k > 0 {
			b.WriteString(",\n")
		}
		fields := []string{jf("id", g.uuid(), false), jf("orderNumber", g.badPAN(), false), jf("ref", g.nonBrand(), true),
			jf("ts", g.epochMS(), true), jf("amount", g.digits(6)+"."+g.digits(2), false), jf("account", g.digits(10), false),
			jf("sortCode", g.digits(2)+"-"+g.digits(2)+"-"+g.digits(2), false), jf("note", "IBAN-like "+g.badIBAN()+" and "+printIBAN(g.badIBAN()), false),
			jf("status", g.pick([]string{"CUSTOMER", "ACCEPTED", "INSTRUCTION", "PROCESSED"}), false), jf("isbn", "978"+g.digits(10), false),
			jf("localPhone", g.add(f, Phone, "020 7946 "+g.digits(4)), false), jf("time", fmt.Sprintf("%02d:%02d:%02d", g.r.IntN(24), g.r.IntN(60), g.r.IntN(60)), false)}
		b.WriteString("  {" + strings.Join(fields, ", ") + "}")
	}
	b.WriteString("\n]}\n")

	// secrets.txt: tokens and keys in a config dump.
	f = "secrets.txt"
	b = g.buf(f)
	for k := 0; k < 10; k++ {
		fmt.Fprintf(b, "aws_access_key_id = %s\n", g.add(f, CloudKey, "AKIA"+strings.Map(func(r rune) rune { return 'A' + r%26 }, g.digits(16))))
		fmt.Fprintf(b, "github = %s\n", g.add(f, CloudKey, "ghp_"+g.digits(18)+"abcdefghijklmnopqr"))
		fmt.Fprintf(b, "server = %s\n", g.add(f, IPAddress, fmt.Sprintf("10.%d.%d.%d", g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))))
		fmt.Fprintf(b, "token = %s\n", g.add(f, JWT, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMSJ9."+g.digits(20)))
		fmt.Fprintf(b, "build = %s version 2.%d.%d\n", g.uuid(), g.r.IntN(10), g.r.IntN(10))
	}
	fmt.Fprintf(b, "key:\n%s\n", g.add(f, PrivateKey, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----"))

	out := map[string][]byte{}
	for name, b := range g.files {
		out[name] = b.Bytes()
	}
	return out, g.labels
}

func readCorpus(t *testing.T) (map[string][]byte, map[string][]label) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(corpusDir, "labels.json"))
	if err != nil {
		t.Fatalf("read labels (run go test -run Corpus -update): %v", err)
	}
	var labels map[string][]label
	if err := json.Unmarshal(raw, &labels); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	ents, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "labels.json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(corpusDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files, labels
}

// TestCorpusGenerated keeps the committed corpus equal to its generator
// (refresh with -update).
func TestCorpusGenerated(t *testing.T) {
	files, labels := generateCorpus()
	lj, err := json.MarshalIndent(labels, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files["labels.json"] = append(lj, '\n')
	for name, data := range files {
		p := filepath.Join(corpusDir, name)
		if *update {
			if err := os.MkdirAll(corpusDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s is not what the generator writes (run go test -run Corpus -update): %v", p, err)
		}
	}
	for name, data := range files {
		if strings.HasSuffix(name, ".json") && !json.Valid(data) {
			t.Errorf("%s is not valid JSON", name)
		}
	}
}

type score struct{ tp, fp, fn int }

func (s score) precision() float64 {
	if s.tp+s.fp == 0 {
		return 1
	}
	return float64(s.tp) / float64(s.tp+s.fp)
}

func (s score) recall() float64 {
	if s.tp+s.fn == 0 {
		return 1
	}
	return float64(s.tp) / float64(s.tp+s.fn)
}

func TestCorpus(t *testing.T) {
	files, labels := readCorpus(t)
	scores := map[Class]*score{}
	for _, c := range AllClasses {
		scores[c] = &score{}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	s := NewScanner(nil)
	ungated := &Scanner{on: s.on, noGate: true}
	for _, name := range names {
		data := files[name]
		if !sameMatches(s.Scan(data), ungated.Scan(data)) {
			t.Errorf("%s: the word gate changes the matches", name)
		}
		want := map[label]int{}
		for _, l := range labels[name] {
			want[l]++
		}
		for _, m := range s.Scan(data) {
			l := label{m.Class, string(data[m.Start:m.End])}
			if want[l] > 0 {
				want[l]--
				scores[m.Class].tp++
				continue
			}
			scores[m.Class].fp++
			t.Logf("false positive in %s: %s %q", name, l.Class, l.Value)
		}
		for l, n := range want {
			if n > 0 {
				scores[l.Class].fn += n
				t.Logf("false negative in %s: %s %q", name, l.Class, l.Value)
			}
		}
	}
	for _, c := range AllClasses {
		sc := scores[c]
		t.Logf("%-12s labels %4d  found %4d  tp %4d  fp %3d  fn %3d  precision %.4f  recall %.4f",
			c, sc.tp+sc.fn, sc.tp+sc.fp, sc.tp, sc.fp, sc.fn, sc.precision(), sc.recall())
	}
	for _, c := range []Class{PAN, IBAN} {
		sc := scores[c]
		if sc.precision() < 0.99 || sc.recall() < 0.99 {
			t.Errorf("%s: precision %.4f recall %.4f, want both >= 0.99", c, sc.precision(), sc.recall())
		}
	}
	if n := scores[PAN].tp + scores[PAN].fn; n < 200 {
		t.Errorf("only %d labelled PANs, want >= 200", n)
	}
	if n := scores[IBAN].tp + scores[IBAN].fn; n < 100 {
		t.Errorf("only %d labelled IBANs, want >= 100", n)
	}
	countries := map[string]bool{}
	for _, ls := range labels {
		for _, l := range ls {
			if l.Class == IBAN {
				countries[l.Value[:2]] = true
			}
		}
	}
	if len(countries) < 20 {
		t.Errorf("IBANs from %d countries, want >= 20", len(countries))
	}
}

// TestCorpusMasking: every JSON file stays valid JSON of the same length
// once masked, and no labelled PAN survives whole.
func TestCorpusMasking(t *testing.T) {
	files, labels := readCorpus(t)
	s := NewScanner(nil)
	for name, data := range files {
		masked := bytes.Clone(data)
		Mask(masked, s.Scan(masked), nil)
		if len(masked) != len(data) {
			t.Errorf("%s: length %d -> %d", name, len(data), len(masked))
		}
		if strings.HasSuffix(name, ".json") {
			if !json.Valid(masked) {
				t.Errorf("%s: masked JSON is invalid", name)
			}
			var v any
			if err := json.Unmarshal(masked, &v); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		for _, l := range labels[name] {
			if len(l.Value) >= 13 && bytes.Contains(masked, []byte(l.Value)) {
				t.Errorf("%s: %s %q is still there after masking", name, l.Class, l.Value)
			}
		}
	}
}
