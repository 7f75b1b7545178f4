package config

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool reads a PEM bundle of CA certificates named by the config
// (client_ca_file, upstream tls.ca_file, an identity provider's ca_file).
// It is the one place those files are parsed, so every one of them fails
// the same way.
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificates found", path)
	}
	return pool, nil
}
