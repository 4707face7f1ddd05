package pii

// ipv4Unit reports whether the unit u is a dotted quad, optionally followed
// by ":port" or "/prefix", and returns the end of the quad. blockedLeft has
// rejected quads glued to a word on the left; on the right, the quad must
// not continue a version ("1.2.3.4.5", "1.2.3.4-beta", "1.2.3.4+b7") or a
// word. What follows a port or prefix does not matter ("10.0.0.7:8080/v1").
func ipv4Unit(text string, u *unit) (end int, ok bool) {
	if u.plus || u.parens || u.ng < 4 || u.ng > 5 {
		return 0, false
	}
	for k := range 4 {
		g := u.g[k]
		if g.n > 3 || k > 0 && g.sep != '.' {
			return 0, false
		}
		p := u.start + int(g.off)
		if octet(text[p:p+int(g.n)]) > 255 {
			return 0, false
		}
	}
	end = u.start + int(u.g[3].off) + int(u.g[3].n)
	if u.ng == 5 {
		g := u.g[4]
		p := u.start + int(g.off)
		switch {
		case g.sep == ':' && g.n <= 5: // port
		case g.sep == '/' && g.n <= 2 && octet(text[p:p+int(g.n)]) <= 32: // CIDR prefix
		default:
			return 0, false
		}
	} else if end < len(text) {
		c := text[end]
		if isWordByte(c) || c == '@' || (c == '.' || c == '-' || c == '+') && end+1 < len(text) && isWordByte(text[end+1]) {
			return 0, false
		}
	}
	if versionCue(text, u.start) {
		return 0, false
	}
	return end, true
}

// octet returns the value of up to three ASCII digits.
func octet(d string) int {
	v := 0
	for i := range len(d) {
		v = v*10 + int(d[i]-'0')
	}
	return v
}

// versionWindow is how far before a dotted quad versionCue looks.
const versionWindow = 24

// versionCue reports whether "version" or "release" (any case) occurs in
// the versionWindow bytes before i, which makes a dotted quad a version
// number ("AssemblyVersion(\"1.0.0.0\")", "release 4.2.0.1").
func versionCue(text string, i int) bool {
	for p := max(0, i-versionWindow); p < i; p++ {
		if c := text[p] | 0x20; c != 'v' && c != 'r' {
			continue
		}
		if hasPrefixFold(text[p:i], "version") || hasPrefixFold(text[p:i], "release") {
			return true
		}
	}
	return false
}

// maxIPv6 is the longest IPv6 text form: eight groups of four hex digits
// with seven colons, or six groups and a dotted-quad tail (45 bytes).
const maxIPv6 = 45

// ip6Start reports whether an IPv6 address may start at p: up to four hex
// digits, then ':' followed by a hex digit or another ':'. Chains and the
// fewDigits region stop before such a place, so that the main loop visits
// it and matchIPv6 can judge it.
func ip6Start(text string, p int) bool {
	j := p
	for j < len(text) && j-p < 5 && isHex(text[j]) {
		j++
	}
	return j+1 < len(text) && text[j] == ':' && (isHex(text[j+1]) || text[j+1] == ':')
}

// matchIPv6 matches an IPv6 address around the trigger at t (a digit or a
// ':'). The address starts at most four hex digits before t, where the
// text is not a word byte or a joiner ('-', '.', '/', ':'); after an '@'
// it is a host ("root@2001:db8::7"); from any trigger inside a
// candidate the same start is found, so the result does not depend on
// which trigger the main loop happened to visit first.
func matchIPv6(text string, t int) (Finding, bool) {
	s := t
	for s > 0 && t-s < 4 && isHex(text[s-1]) {
		s--
	}
	if s > 0 {
		if c := text[s-1]; isWordByte(c) || isJoiner(c) {
			return Finding{}, false
		}
	}
	// Quick rejection for the common digit trigger: no ':' after the first
	// group.
	if !ip6Start(text, s) {
		return Finding{}, false
	}
	end, ok := parseIPv6(text, s)
	if !ok {
		return Finding{}, false
	}
	return Finding{Type: IPAddress, Start: s, End: end}, true
}

// parseIPv6 parses an IPv6 address starting at s and returns its end. See
// the package comment for the extra rules against false positives.
func parseIPv6(text string, s int) (int, bool) {
	n := len(text)
	i := s
	groups := 0
	compressed := false
	digit, long, quad := false, false, false
	if i+1 < n && text[i] == ':' && text[i+1] == ':' {
		compressed = true
		i += 2
	}
	for i < n && i-s <= maxIPv6 {
		j := i
		for j < n && j-i < 5 && isHex(text[j]) {
			j++
		}
		if j == i {
			break // after "::" at the end: "fe80::"
		}
		if j-i > 4 {
			return 0, false
		}
		if j < n && text[j] == '.' && groups <= 6 {
			// A dotted-quad tail takes the room of two groups.
			if e, ok := parseQuad(text, i); ok {
				quad, digit = true, true
				groups += 2
				i = e
				break
			}
			return 0, false
		}
		for _, c := range []byte(text[i:j]) {
			digit = digit || isDigit(c)
		}
		long = long || j-i >= 3
		groups++
		i = j
		if i+1 < n && text[i] == ':' && text[i+1] == ':' {
			if compressed {
				return 0, false // a second "::"
			}
			compressed = true
			i += 2
			continue
		}
		if i+1 < n && text[i] == ':' && isHex(text[i+1]) {
			i++
			continue
		}
		break
	}
	if i-s > maxIPv6 {
		return 0, false
	}
	if compressed && groups > 7 || !compressed && groups != 8 {
		return 0, false
	}
	if !digit || !long && !quad {
		return 0, false
	}
	if i < n {
		c := text[i]
		if isWordByte(c) || c == ':' || c == '@' || (c == '.' || c == '-') && i+1 < n && isWordByte(text[i+1]) {
			return 0, false
		}
	}
	return i, true
}

// parseQuad parses a dotted quad starting at s, without context checks,
// and returns its end.
func parseQuad(text string, s int) (int, bool) {
	i := s
	for k := range 4 {
		if k > 0 {
			if i >= len(text) || text[i] != '.' {
				return 0, false
			}
			i++
		}
		j := i
		for j < len(text) && j-i < 4 && isDigit(text[j]) {
			j++
		}
		if j == i || j-i > 3 || octet(text[i:j]) > 255 {
			return 0, false
		}
		i = j
	}
	return i, true
}

// matchIPv4After matches a dotted quad starting at t right after an '@'
// (user@host, URL credentials), which the numeric scan skips as glued to a
// word. The quad may be followed by ":port"; like ipv4Unit it must not run
// on into a version or a word.
func matchIPv4After(text string, t int) (Finding, bool) {
	i := t
	for k := range 4 {
		if k > 0 {
			if i >= len(text) || text[i] != '.' {
				return Finding{}, false
			}
			i++
		}
		j := i
		for j < len(text) && j-i < 4 && isDigit(text[j]) {
			j++
		}
		if j == i || j-i > 3 || octet(text[i:j]) > 255 {
			return Finding{}, false
		}
		i = j
	}
	if i < len(text) {
		c := text[i]
		if isWordByte(c) || (c == '.' || c == '-' || c == '+') && i+1 < len(text) && isWordByte(text[i+1]) {
			return Finding{}, false
		}
	}
	return Finding{Type: IPAddress, Start: t, End: i}, true
}
