package dlp

// Mask overwrites, in place, the matches of the given classes (nil: all
// classes) and keeps the length of data:
//
//   - a PAN keeps its first six and last four digits (PCI DSS 3.4.1) and its
//     separators; a shorter "pan" match (a CVV under a cvv/cvc key) loses
//     every digit;
//   - every other class is masked entirely, except spaces and hyphens;
//   - masked characters become '*', or digits in a bare JSON number
//     (Match.Number): '0', and '9' for a leading digit, as JSON forbids
//     leading zeros;
//   - quotes and JSON escape sequences (\n, \uXXXX, ...) are never touched,
//     so a JSON document stays valid JSON.
//
// Matches out of the bounds of data are ignored.
func Mask(data []byte, matches []Match, classes map[Class]bool) {
	for _, m := range matches {
		if classes != nil && !classes[m.Class] || m.Start < 0 || m.End > len(data) || m.Start >= m.End {
			continue
		}
		seg := data[m.Start:m.End]
		keepHead, keepTail := 0, 0
		if m.Class == PAN {
			n := 0
			for _, c := range seg {
				if isDigit(c) {
					n++
				}
			}
			if n >= 13 {
				keepHead, keepTail = 6, n-4
			} else {
				keepTail = n
			}
			d := 0
			for k, c := range seg {
				if !isDigit(c) {
					continue
				}
				if d >= keepHead && d < keepTail {
					seg[k] = maskByte(m.Number, k)
				}
				d++
			}
			continue
		}
		for k := 0; k < len(seg); k++ {
			switch c := seg[k]; c {
			case '\\':
				if k+1 < len(seg) && seg[k+1] == 'u' {
					k += 5
				} else {
					k++
				}
			case '"', ' ', '-', '\t', '\r', '\n':
			default:
				seg[k] = maskByte(m.Number, k)
			}
		}
	}
}

func maskByte(number bool, k int) byte {
	switch {
	case !number:
		return '*'
	case k == 0:
		return '9'
	default:
		return '0'
	}
}
