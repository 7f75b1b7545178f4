// Package audit writes and verifies Bulwark's tamper-evident audit log
// (PCI DSS requirement 10).
//
// The log is a file of JSON lines, one per exchange (a request/response pair
// through the gateway), written by log/slog's JSONHandler. Every line carries
// three chain fields, always last and in this order:
//
//	"seq":  uint64, 1 for the first record of a file, +1 per record
//	"prev": the "hash" of the previous record (64 zeros for the first record)
//	"hash": hex SHA-256 over the exact bytes of the line up to, but
//	        excluding, the `,"hash":"…"}` suffix
//
// Verify replays the chain: editing any byte of a record breaks that record's
// own hash; deleting or reordering records breaks "prev" (or "seq") on the
// following line; recomputing an edited record's hash breaks "prev" on the
// next line; removing records from the head breaks the first record's
// seq 1 / zero-prev rule.
//
// What a hash chain cannot detect: truncation of the tail (the log simply
// looks shorter, and a torn last line can be cut back to the previous
// newline), and a full rewrite of the chain from the edited record onward by
// anyone who can rewrite the whole file. Both are closed by anchoring the
// latest "hash" (with its "seq") outside the host that writes the log: a
// periodic signed checkpoint sent to the SIEM, a WORM bucket, or a
// transparency log. That is a later feature.
//
// The package is a leaf: it imports nothing from the project. The gateway
// converts its exchange into a Record and calls Writer.Write, which never
// loses a record: when the bounded queue is full, Write blocks.
package audit
