package bank

import _ "embed"

//go:embed openapi.yaml
var openapiYAML []byte

// Spec returns the embedded OpenAPI 3.0.3 document (YAML) that describes
// every endpoint of the bank exactly as implemented. The caller gets its own
// copy.
func Spec() []byte {
	return append([]byte(nil), openapiYAML...)
}
