// Package fapi holds the Financial-grade API token binding checks: the
// proof that the caller presenting an access token also holds the key the
// token was issued to.
//
//   - Certificate-bound access tokens (RFC 8705 §3): the token's
//     cnf."x5t#S256" must equal the SHA-256 thumbprint of the client
//     certificate on this TLS connection (CheckCertificateBinding).
//   - DPoP (RFC 9449): the request carries a DPoP proof JWT signed with the
//     client's key; DPoPVerifier.Verify checks the proof against the request
//     and the access token and returns the key's RFC 7638 thumbprint, which
//     CheckDPoPBinding compares with the token's cnf.jkt.
//
// The package does verification only: the authenticate stage extracts the
// request into an identity.Request, verifies the access token with its
// provider, and then calls these checks.
//
// # Replay cache
//
// Each DPoPVerifier remembers the SHA-256 of every accepted proof's jti for
// 2×MaxAge (a proof is acceptable while its iat is within now±MaxAge, a span
// of 2×MaxAge), in a cache bounded by ReplayCacheSize entries and sharded
// over independently locked maps so that concurrent requests rarely contend.
// Expired entries are evicted first; when the cache is still full of
// unexpired entries, new proofs are refused with reason
// "dpop_replay_cache_full" (fail closed) rather than forgetting entries
// early, which would reopen the replay window. This bounds memory under a
// flood of distinct proofs at the price of refusing DPoP requests until
// entries expire; a legitimate load of R proofs per second needs
// ReplayCacheSize > R × 2 × MaxAge (the default 100000 entries with the
// default 60s MaxAge carries about 800 DPoP requests per second).
//
// The replay cache is per process. With several gateway replicas behind a
// load balancer each replica has its own cache, so one proof can be replayed
// once per replica within its validity window (a shared cache, e.g. Redis,
// is a later issue). The binding to the access token (ath, cnf.jkt) and the
// request (htm, htu) still limits a replayed proof to the same request with
// the same token.
package fapi
