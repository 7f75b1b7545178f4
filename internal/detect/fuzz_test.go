package detect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

// fuzzEventSize is the number of input bytes one fuzzed event takes.
const fuzzEventSize = 6

// fuzzOptions make every detector fire on a few events and every bound
// bite.
var fuzzOptions = Options{
	Window: 10 * time.Second, MaxDistinctObjects: 3, MinFailures: 2, StuffingUsernames: 2, StuffingFailures: 4,
	DistributedClients: 2, OwnershipMinSubjects: 2, MaxTracked: MinTracked, MaxOwners: 8, CoolDown: time.Minute,
}

// decodeEvents turns bytes into events, fuzzEventSize bytes each, from
// small alphabets so that keys repeat and collide:
//
//	0: subject (0-4, 5+ anonymous) and client (high nibble, 0-4, 5+ none)
//	1: operation (low 2 bits), status (next 3 bits), blocked (bit 5),
//	   reason (bits 6-7: none, authorize, authz, brute_force)
//	2: object id (low nibble), returned id (high nibble)
//	3: username (low nibble, 0 none), ids present (bit 4 objects,
//	   bit 5 returned), time (bits 6-7: normal, zero, future, past)
//	4: time step in 50ms units
//	5: batch break (bit 0), extra object ids (bits 1-3)
func decodeEvents(data []byte) (batches [][]event.Exchange) {
	statuses := []int{200, 201, 401, 403, 404, 429, 500, 204}
	ops := []string{"GET /accounts/{accountId}", "GET /cards/{cardId}", "POST /login", ""}
	reasons := []string{"", "authorize:object_denied", "authz:object_denied", "brute_force:client_locked"}
	t := base
	var cur []event.Exchange
	for i := 0; i+fuzzEventSize <= len(data); i += fuzzEventSize {
		b := data[i : i+fuzzEventSize]
		t = t.Add(time.Duration(b[4]) * 50 * time.Millisecond)
		e := event.Exchange{ID: "r" + strconv.Itoa(i), Time: t, API: "api", Operation: ops[b[1]&3], ObjectParam: "id",
			Status: statuses[b[1]>>2&7], Blocked: b[1]&0x20 != 0, ObjectStep: b[4]&1 != 0}
		if s := b[0] & 0xf; s < 5 {
			e.Subject = "s" + strconv.Itoa(int(s))
		}
		if c := b[0] >> 4; c < 5 {
			e.Client = "10.0.0." + strconv.Itoa(int(c))
		}
		if r := reasons[b[1]>>6]; r != "" {
			e.Reasons = []string{r}
		}
		if b[3]&0x10 != 0 {
			e.ObjectIDs = append(e.ObjectIDs, "o"+strconv.Itoa(int(b[2]&0xf)))
			for j := range int(b[5] >> 1 & 7) {
				e.ObjectIDs = append(e.ObjectIDs, "o"+strconv.Itoa(j))
			}
		}
		if b[3]&0x20 != 0 {
			e.ReturnedIDs = []string{"o" + strconv.Itoa(int(b[2]>>4))}
		}
		if u := b[3] & 0xf; u != 0 {
			e.Username = "u" + strconv.Itoa(int(u))
		}
		switch b[3] >> 6 {
		case 1:
			e.Time = time.Time{}
		case 2:
			e.Time = t.Add(time.Hour)
		case 3:
			e.Time = t.Add(-time.Hour)
		}
		cur = append(cur, e)
		if b[5]&1 != 0 {
			batches, cur = append(batches, cur), nil
		}
	}
	return append(batches, cur)
}

// fuzzSeeds are the checked-in corpus under testdata/fuzz/FuzzObserve,
// regenerated with -update.
func fuzzSeeds() map[string][]byte {
	seed := func(n int, f func(i int) [fuzzEventSize]byte) []byte {
		var out []byte
		for i := range n {
			e := f(i)
			out = append(out, e[:]...)
		}
		return out
	}
	return map[string][]byte{
		"empty": {},
		// one subject walking object ids, mostly denied
		"enumeration": seed(12, func(i int) [fuzzEventSize]byte {
			return [fuzzEventSize]byte{0x01, 3 << 2, byte(i), 0x10, 2, byte(i % 2)}
		}),
		// subject 0 is returned objects, subject 1 requests them
		"ownership": seed(8, func(i int) [fuzzEventSize]byte {
			if i < 4 {
				return [fuzzEventSize]byte{0x00, 0, byte(i << 4), 0x20, 1, 0}
			}
			return [fuzzEventSize]byte{0x11, 0, byte(i - 4), 0x10, 1, 1}
		}),
		// one address failing logins for many usernames, one username from many addresses
		"stuffing": seed(10, func(i int) [fuzzEventSize]byte {
			return [fuzzEventSize]byte{byte(i%5<<4) | 5, 2 | 2<<2, 0, byte(i%15 + 1), 3, 0}
		}),
		// zero, future and past times, blocked brute-force refusals
		"times": seed(9, func(i int) [fuzzEventSize]byte {
			return [fuzzEventSize]byte{byte(i), byte(i)<<2 | 0xe0, byte(i * 17), byte(i<<6) | 0x31, 255, byte(i)}
		}),
	}
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzObserve")
	for name, b := range fuzzSeeds() {
		path := filepath.Join(dir, name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale (run with -update)", path)
		}
	}
}

func FuzzObserve(f *testing.F) {
	kinds := map[string]bool{finding.KindEnumeration: true, finding.KindOwnershipAnomaly: true, finding.KindCredentialStuffing: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, c := newTest(t, fuzzOptions)
		for _, batch := range decodeEvents(data) {
			if len(batch) > 0 {
				c.Set(batch[len(batch)-1].Time)
			}
			seen := map[string]bool{}
			for _, fd := range d.Observe(batch) {
				if fd.ID == "" || !kinds[fd.Kind] || fd.Count < 1 || fd.LastSeen.Before(fd.FirstSeen) || seen[fd.ID] {
					t.Fatalf("finding %+v", fd)
				}
				seen[fd.ID] = true
				if _, err := json.Marshal(OCSF(fd)); err != nil {
					t.Fatal(err)
				}
			}
			checkInvariants(t, d)
			d.CoolingDown("s0", "10.0.0.0")
		}
		s := d.Stats()
		if s.Tracked > fuzzOptions.MaxTracked || s.Findings > fuzzOptions.MaxTracked || s.Owners > fuzzOptions.MaxOwners ||
			s.CoolingDown > fuzzOptions.MaxTracked {
			t.Fatalf("stats %+v exceed the bounds", s)
		}
	})
}
