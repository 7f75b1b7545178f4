// Package detect runs behavioural detectors over the exchange-event
// stream (package event): attacks that no single request reveals, but a
// sequence of them from one identity or address does. Each detection is a
// finding.Finding; OCSF renders one as an OCSF 1.3 Detection Finding for
// a SIEM, and CoolingDown tells the gateway, in enforce mode, which
// identities and addresses to refuse for a while.
//
// The package reads hashes only (subjects, usernames, object ids are
// hashed by the gateway) and keeps them in memory, bounded. It does no
// I/O and logs nothing; it imports only event and finding.
//
// # Windows
//
// Every detector counts per key within a sliding window of Window
// (default 60s), cut into 12 buckets: a count covers the last 11 to 12
// twelfths of Window, and moving the window is O(1) per event. Distinct
// ids (object hashes, usernames, client addresses) are kept per key with
// the bucket of their latest sighting, in a set capped at 2 × (threshold
// + 1) members: the threshold's crossing is exact, and distinct counts in
// evidence are exact up to the cap and a lower bound beyond it.
//
// Time is the events' time, so that replayed traffic (HAR, access logs)
// is judged as it happened. An event without a time, before 1970 or more
// than a minute ahead of the clock takes the clock's time, so a gateway
// with a bad clock cannot push windows ahead. An event older than its
// key's window is ignored.
//
// # Enumeration (BOLA probing), finding.KindEnumeration, High
//
// Key: API × identity (the Subject hash; the Client address for anonymous
// callers) × operation × object parameter, for events with ObjectIDs.
// Raised when, within Window,
//
//   - more than MaxDistinctObjects (default 20) distinct object ids were
//     requested: a customer uses a handful of accounts, cards or orders
//     per operation, a script walking ids requests hundreds a minute; or
//   - at least MinFailureShare (default 0.5) of the key's object requests
//     failed, with at least MinFailures (default 10) failures. A failure
//     is a 403 or 404 or a stop reason of the authorization stage
//     ("authorize:…", or "authz:…"). A user with a stale link gets one or
//     two of these; a guesser mostly gets these. The share keeps a heavy
//     legitimate user with a few errors out; or
//   - at least MinSequentialSteps (default 10) sequential steps landed on
//     ids new to the window: a walk (/accounts/1001, 1002, …) is caught
//     at its tenth step, before it has touched twenty objects.
//
// Object ids reach the detector hashed, so their order is not visible
// here: the gateway, which sees the ids, marks an event whose id is
// within a few of the previous one the same caller requested on the same
// operation (event.Exchange.ObjectStep). A step counts only onto an id
// new to the window, so a customer switching between two adjacent
// accounts makes one step, not hundreds.
//
// False positives: back-office and support identities, aggregators and
// batch clients legitimately read many objects, and a UI prefetching the
// details of a long list reads many at once. Raise MaxDistinctObjects for
// such APIs, or leave those identities' events out of the stream.
//
// # Ownership anomaly, finding.KindOwnershipAnomaly, High
//
// The detector learns, per API, the first subject each object id was
// returned to (ReturnedIDs of a 2xx response) or successfully requested
// by (ObjectIDs of a 2xx response). A later request for that object by a
// different subject, with any status, is a foreign request. Key: API ×
// subject. Raised when the subject made foreign requests for at least
// OwnershipMinSubjects (default 3) distinct objects within Window: one
// foreign object may be a shared link, three in a minute are a pattern.
// Evidence counts how many of the foreign requests succeeded: a success
// is a probable BOLA exposure, not only an attempt.
//
// An id returned to a second subject (a joint account, a merchant many
// customers' transactions name) is shared: it has no owner, and requests
// for it are never foreign. An exchange that touched a foreign object
// teaches nothing (the ids in its response belong to the other subject). The first owner is kept
// until MaxOwners (default 1,000,000: about 150 MB, plus the id strings
// when the events' are not shared) evicts it, oldest first; anonymous
// exchanges are ignored.
//
// False positives: there is no role information in events, so an admin
// or support agent reading customers' objects is flagged like an
// attacker; so are joint owners (a joint account first seen with one
// holder) and objects whose ownership changes. Within one API, ids of
// different object types share one namespace (only the hash is known), so
// small integer ids of different types can collide; UUID-like ids do not.
//
// # Credential stuffing, finding.KindCredentialStuffing
//
// Events with a Username are login attempts; a failure is a 401 or 403
// or a stop reason of the brute-force stage ("brute_force:…"). Two keys:
//
//   - API × client address, High: raised when failures within Window
//     cover at least StuffingUsernames (default 10) distinct usernames, or
//     number at least StuffingFailures (default 30). A household or an
//     office NAT has a handful of people mistyping, a stuffing list has
//     thousands of usernames; 30 failures a minute from one address is
//     scripted even against a few usernames;
//   - API × username, Medium ("pattern": "distributed_guessing"): raised
//     when the username failed from more than DistributedClients (default
//     10) distinct addresses within Window, a botnet guessing one
//     account's password. It is Medium because mobile users roam between
//     addresses and the brute-force guard already refuses the username.
//
// False positives: a carrier-grade NAT or a corporate proxy fronts many
// users behind one address; a login form bug (every attempt failing)
// looks like stuffing.
//
// # Findings
//
// A finding's ID is stable: finding.MakeID(kind, API, who, operation),
// who being the subject hash, the client address (anonymous enumeration,
// stuffing) or the username hash (distributed guessing), the operation
// "" for the detectors that aggregate across operations
// ("distributed_guessing" for distributed guessing). Observe returns a
// finding when it is raised
// and again, updated, from each later batch in which its condition still
// holds: at most once per batch. Count is the number of events attributed
// to the finding: the window's events when its condition first held (or
// held again after lapsing), one per later event while it holds;
// Evidence["reports"] counts the times Observe returned it (1: new).
// FirstSeen is the event that raised it, LastSeen the latest counted.
// Findings are remembered (for stable Count and reports) up to MaxTracked,
// least recently updated first out.
//
// # Cool-down
//
// A raised or updated finding puts its actor on cool-down until the
// finding's LastSeen + CoolDown (default 5m: long enough to break an
// automated attack's loop, short enough that a false positive costs a
// customer minutes): the subject for enumeration and ownership (the
// client address for anonymous enumeration), the client address for
// credential stuffing. Distributed guessing puts nothing on cool-down:
// its sources are many and the target is the victim. A subject flagged
// for enumeration is cooled by identity only, not by address, since one
// address may front many users. CoolingDown reads its own table under a
// read lock and never waits for Observe. The table holds at most
// MaxTracked entries; when it is full of live entries a new one replaces
// an arbitrary one.
//
// # Memory
//
// Keys are held in four tables bounded together by MaxTracked (default
// 100,000), least recently used first out; enumeration gets half,
// ownership a quarter, each credential-stuffing key an eighth, so a flood
// of one kind cannot evict another detector's keys. A key's idle state is
// dropped once its latest event has left the window. A key costs about
// 0.5 KB with a few distinct ids (a full default table about 50 MB) and
// a few KB with a full set. Strings of
// the events (hashes, API and operation names) are kept as map keys, not
// copied. At most 256 ObjectIDs and ReturnedIDs of one event are read.
//
// # Concurrency and cost
//
// Observe and Stats take one mutex; Observe is meant for the one ingest
// goroutine of an event.Bus subscriber. Each event costs a few map
// operations; only new keys, new ids and the findings returned allocate.
package detect
