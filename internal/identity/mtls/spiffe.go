package mtls

import (
	"errors"
	"strings"
)

// SPIFFE ID limits from the SPIFFE ID specification (§2.1, §2.3): a trust
// domain is at most 255 bytes and a whole ID at most 2048 bytes.
const (
	maxTrustDomainBytes = 255
	maxSPIFFEIDBytes    = 2048
	spiffePrefix        = "spiffe://"
)

// Errors of ParseSPIFFEID.
var (
	ErrSPIFFEScheme      = errors.New("spiffe id: scheme must be spiffe://")
	ErrSPIFFETooLong     = errors.New("spiffe id: too long")
	ErrSPIFFETrustDomain = errors.New("spiffe id: trust domain must be non-empty lower-case letters, digits, '.', '-' or '_'")
	ErrSPIFFEPath        = errors.New("spiffe id: path segments must be non-empty letters, digits, '.', '-' or '_', and not '.' or '..'")
)

// ParseSPIFFEID checks that s is a SPIFFE ID as the SPIFFE ID specification
// defines it and returns its trust domain and path ("" or "/seg/seg").
//
// spiffe://trust-domain[/path]: the scheme is exactly "spiffe"; the trust
// domain is lower-case [a-z0-9.-_] (so no port, userinfo, upper case or
// percent-encoding); each path segment is non-empty [a-zA-Z0-9.-_] and not
// "." or ".."; no trailing slash, query or fragment. The check is by bytes,
// not by url.Parse, so that no normalisation can make two different strings
// the same ID.
func ParseSPIFFEID(s string) (trustDomain, path string, err error) {
	if len(s) > maxSPIFFEIDBytes {
		return "", "", ErrSPIFFETooLong
	}
	rest, ok := strings.CutPrefix(s, spiffePrefix)
	if !ok {
		return "", "", ErrSPIFFEScheme
	}
	trustDomain, path = rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		trustDomain, path = rest[:i], rest[i:]
	}
	if trustDomain == "" || len(trustDomain) > maxTrustDomainBytes {
		return "", "", ErrSPIFFETrustDomain
	}
	for i := 0; i < len(trustDomain); i++ {
		if !tdChar(trustDomain[i]) {
			return "", "", ErrSPIFFETrustDomain
		}
	}
	if path == "" {
		return trustDomain, "", nil
	}
	// path starts with '/': check each segment after it.
	for seg := range strings.SplitSeq(path[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", ErrSPIFFEPath
		}
		for i := 0; i < len(seg); i++ {
			if !pathChar(seg[i]) {
				return "", "", ErrSPIFFEPath
			}
		}
	}
	return trustDomain, path, nil
}

func tdChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
}

func pathChar(c byte) bool {
	return tdChar(c) || c >= 'A' && c <= 'Z'
}
