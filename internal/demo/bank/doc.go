// Package bank is the sample bank API that `bulwark demo` puts behind the
// gateway: a small, realistic, deterministic JSON API (customers, accounts,
// transactions, cards, payments, login and an administrative listing) with
// its OpenAPI 3.0.3 contract embedded (see [Spec]).
//
// # Deliberately vulnerable
//
// The bank performs NO authorization of its own. Any existing account, card,
// customer or payment id is served to any caller, whatever token (if any) the
// caller presents; the administrative listing is open to everyone; PATCH
// bodies are decoded leniently and unknown properties are silently ignored;
// card endpoints return full card numbers (PANs). This is on purpose: it is
// the vulnerable application behind the gateway, so that the demo can show
// Bulwark stopping broken object level authorization (BOLA), broken function
// level authorization, mass assignment and card-number leakage. Never expose
// it to anything but loopback.
//
// # Demo data
//
// All data is generated from [Options].Seed and is identical for the same
// seed: customer N (1-based) is derived only from the seed and N, so it does
// not change when [Options].Customers changes. Every IBAN is a GB IBAN with
// valid mod-97 check digits, every PAN passes the Luhn check and lies in a
// realistic Visa or Mastercard range, every National Insurance number is
// well-formed, and telephone numbers are in Ofcom's range reserved for drama
// (+44 7700 900xxx). None of it belongs to a real person.
//
// Demo-only credentials: username "customerN" with password "passwordN" for
// N in 1..Customers (see [Credentials]). POST /login returns an opaque random
// token; the bank remembers which customer it was issued to
// ([Bank.CustomerForToken]) but never checks it.
//
// State that changes at run time (payments, account nicknames, issued tokens)
// lives in memory behind a mutex; a [Bank] is safe for concurrent use.
package bank
