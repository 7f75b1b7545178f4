package inventory

import (
	"strconv"
	"strings"
)

// deriveName names a parameter after the literal before it:
// "customers" -> "customerId", "domestic-payments" -> "domesticPaymentId";
// "id" when there is no usable word.
func deriveName(prev string, word bool) string {
	if !word || prev == "" {
		return "id"
	}
	var b strings.Builder
	first := true
	for _, part := range strings.FieldsFunc(prev, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		for i := 0; i < len(part); i++ {
			if !isAlpha(part[i]) {
				return "id"
			}
		}
		if first {
			b.WriteString(strings.ToLower(part[:1]))
		} else {
			b.WriteString(strings.ToUpper(part[:1]))
		}
		b.WriteString(part[1:])
		first = false
	}
	base := singular(b.String())
	if base == "" || len(base)+2 > maxParamName {
		return "id"
	}
	return base + "Id"
}

// singular strips a plural ending of an English resource name.
func singular(s string) string {
	lower := strings.ToLower(s)
	switch {
	case len(s) > 3 && strings.HasSuffix(lower, "ies"):
		return s[:len(s)-3] + "y"
	case strings.HasSuffix(lower, "sses"), strings.HasSuffix(lower, "shes"),
		strings.HasSuffix(lower, "ches"), strings.HasSuffix(lower, "xes"),
		strings.HasSuffix(lower, "zes"), strings.HasSuffix(lower, "uses"):
		return s[:len(s)-2]
	case strings.HasSuffix(lower, "ss"), strings.HasSuffix(lower, "us"):
		return s
	case len(s) > 1 && strings.HasSuffix(lower, "s"):
		return s[:len(s)-1]
	}
	return s
}

// uniqueName returns name, or name2, name3, ... when it is taken.
func uniqueName(name string, used, reserved []string) string {
	taken := func(n string) bool {
		for _, u := range used {
			if u == n {
				return true
			}
		}
		for _, u := range reserved {
			if u == n {
				return true
			}
		}
		return false
	}
	if !taken(name) {
		return name
	}
	for i := 2; ; i++ {
		if c := name + strconv.Itoa(i); !taken(c) {
			return c
		}
	}
}
