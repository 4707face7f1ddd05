package baseline

const (
	maxLocal  = 64  // RFC 5321 limit on the local part
	maxDomain = 253 // RFC 1035 limit on a domain name
	maxLabel  = 63  // RFC 1035 limit on a label
)

// matchEmail matches an e-mail address around the '@' at text[at].
func matchEmail(text string, at int) (Finding, bool) {
	s := at
	for s > 0 && at-s <= maxLocal && isLocalByte(text[s-1]) {
		s--
	}
	if at-s > maxLocal {
		return Finding{}, false
	}
	for s < at && text[s] == '.' { // leading dots are punctuation: "...bob@x.io"
		s++
	}
	if s == at || text[at-1] == '.' || s > 0 && text[s-1] == '@' {
		return Finding{}, false
	}
	for i := s + 1; i < at; i++ {
		if text[i] == '.' && text[i-1] == '.' {
			return Finding{}, false
		}
	}

	e := at + 1
	for e < len(text) && e-at-1 <= maxDomain && isDomainByte(text[e]) {
		e++
	}
	if e-at-1 > maxDomain || e < len(text) && text[e] == '@' {
		return Finding{}, false
	}
	for e > at+1 && (text[e-1] == '.' || text[e-1] == '-') { // trailing punctuation
		e--
	}
	if !validDomain(text[at+1 : e]) {
		return Finding{}, false
	}
	return Finding{Type: Email, Start: s, End: e}, true
}

// validDomain reports whether d is two or more dot-separated labels of
// letters, digits and inner hyphens, the last at least two letters.
func validDomain(d string) bool {
	labels, start := 0, 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			continue
		}
		l := d[start:i]
		if len(l) == 0 || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		start = i + 1
	}
	tld := d[lastDot(d)+1:]
	if labels < 2 || len(tld) < 2 {
		return false
	}
	for i := range len(tld) {
		if !isLetter(tld[i]) {
			return false
		}
	}
	return true
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// isLocalByte reports whether c may appear in the local part of an address.
func isLocalByte(c byte) bool {
	return isDigit(c) || isLetter(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// isDomainByte reports whether c may appear in a domain name.
func isDomainByte(c byte) bool {
	return isDigit(c) || isLetter(c) || c == '.' || c == '-'
}
