package pii

// Numeric detection works on two levels.
//
// A unit is a token of digit groups glued by joiners ('-', '.', '/', ':') or
// parentheses: "415-555-2671", "(415)", "+44(0)20", "2026-11-25", "4111".
// A unit must match a format as a whole; that is what keeps dates, versions,
// IPs and ids from yielding phone- or SSN-shaped pieces.
//
// A chain is a run of units separated by single spaces: "+44 20 7946 0958",
// "4111 1111 1111 1111", "(415) 555-2671". Matching tries each unit of a chain
// in turn as the start of a finding, takes the longest valid match there and
// continues after it. The chain is parsed lazily into a small ring buffer, so
// the work stays linear and allocation-free however long the chain is.

const (
	maxGroups   = 6  // digit groups a usable unit may have
	maxGroupLen = 19 // digits a usable group may have (longest card)
	maxUnitLen  = 48 // bytes a usable unit may span
	maxChain    = 8  // units a single finding may span
	maxDigits   = 19 // digits any format may have
)

// group is one run of digits inside a unit.
type group struct {
	off   uint8 // offset of the first digit from unit.start
	n     uint8 // number of digits
	sep   byte  // joiner before the group, or 0 (first group, or right after ')')
	paren bool  // written as "(ddd)"
}

// unit is one parsed token; see the comment at the top of the file.
type unit struct {
	start, end int // byte range, surrounding punctuation excluded
	digits     int // digits in all groups
	g          [maxGroups]group
	ng         int
	plus       bool // starts with '+'
	parens     bool // has a parenthesised group
	odd        bool // has a '/' or ':' joiner (dates, times, ratios)
	bad        bool // cannot be part of any finding
	cont       bool // a single space and another unit follow
	lead       bool // an unmatched '(' before it was skipped as punctuation
}

// pure reports whether u is a plain run of digits.
func (u *unit) pure() bool {
	return !u.bad && !u.plus && u.ng == 1 && !u.parens
}

// first returns the first digit of group k.
func (u *unit) first(text string, k int) byte {
	return text[u.start+int(u.g[k].off)]
}

// sizes reports whether u has exactly the given group sizes.
func (u *unit) sizes(n ...uint8) bool {
	if u.ng != len(n) {
		return false
	}
	for i, v := range n {
		if u.g[i].n != v {
			return false
		}
	}
	return true
}

// joinedBy reports whether every group after the first is preceded by sep.
func (u *unit) joinedBy(sep byte) bool {
	for i := 1; i < u.ng; i++ {
		if u.g[i].sep != sep {
			return false
		}
	}
	return true
}

// appendDigits copies the digits of u into buf after n and returns the new
// length; digits that do not fit are dropped (callers check counts first).
func (u *unit) appendDigits(text string, buf []byte, n int) int {
	for i := range u.g[:u.ng] {
		g := u.g[i]
		p := u.start + int(g.off)
		n += copy(buf[n:], text[p:p+int(g.n)])
	}
	return n
}

func (u *unit) addGroup(start, n int, sep byte, paren bool) {
	if u.bad {
		return
	}
	if n > maxGroupLen || u.ng == maxGroups || start+n-u.start > maxUnitLen {
		u.bad = true
		return
	}
	u.g[u.ng] = group{off: uint8(start - u.start), n: uint8(n), sep: sep, paren: paren}
	u.ng++
	u.digits += n
	u.parens = u.parens || paren
	u.odd = u.odd || sep == '/' || sep == ':'
}

// parseUnit parses the unit starting at p, which is a digit, or a '+' or '('
// leading to one.
func parseUnit(u *unit, text string, p int) {
	*u = unit{start: p}
	n := len(text)
	i := p
	if text[i] == '(' && closeParen(text, i) < 0 {
		i++
		u.start, u.lead = i, true
	}
	if i < n && text[i] == '+' {
		u.plus = true
		i++
	}
	var sep byte
	for i < n {
		if c := text[i]; isDigit(c) {
			j := i + 1
			for j < n && isDigit(text[j]) {
				j++
			}
			u.addGroup(i, j-i, sep, false)
			i = j
		} else if j := closeParen(text, i); j >= 0 {
			u.addGroup(i+1, j-i-1, sep, true)
			i = j + 1
		} else {
			break
		}
		sep = 0
		if i+1 < n && isJoiner(text[i]) && (isDigit(text[i+1]) || text[i+1] == '(') {
			sep = text[i]
			i++
		}
	}
	if sep != 0 { // the joiner led to a '(' that opened no group
		i--
	}
	u.end = i
	if u.ng == 0 {
		u.bad = true
		return
	}
	if i >= n {
		return
	}
	switch c := text[i]; {
	case isWordByte(c), c == '@', c == '+', c == '(':
		u.bad = true // glued to a word, an address or another token
	case isJoiner(c):
		u.bad = i+1 < n && isWordByte(text[i+1]) // "2671-ext", "12.5kg"
	case c == ' ':
		u.cont = i+1 < n && startsUnit(text, i+1) && !ip6Start(text, i+1)
	}
}

// closeParen returns the index of the ')' if text[i:] starts with "(d)" to
// "(dddd)", else -1.
func closeParen(text string, i int) int {
	if i >= len(text) || text[i] != '(' {
		return -1
	}
	j := i + 1
	for j < len(text) && j-i <= 5 && isDigit(text[j]) {
		j++
	}
	if j == i+1 || j-i > 5 || j >= len(text) || text[j] != ')' {
		return -1
	}
	return j
}

// startsUnit reports whether a unit can start at i.
func startsUnit(text string, i int) bool {
	c := text[i]
	if isDigit(c) {
		return true
	}
	if (c == '+' || c == '(') && i+1 < len(text) {
		d := text[i+1]
		return isDigit(d) || c == '+' && d == '('
	}
	return false
}

// chain is a lazily parsed run of space-separated units, held in a ring
// buffer of the units not yet consumed.
type chain struct {
	text     string
	u        [maxChain]unit
	head, n  int  // ring position and count of buffered units
	next     int  // where the next unit starts, if more
	more     bool // another unit follows the buffered ones
	started  bool // a unit has been parsed
	end      int  // end of the last unit taken into the chain
	prevPure bool // the unit before the head was a plain digit run
}

// reset empties c for a chain starting at start. Buffered units are not
// cleared: parseUnit overwrites each before use.
func (c *chain) reset(text string, start int) {
	c.text, c.head, c.n = text, 0, 0
	c.next, c.more, c.started, c.end, c.prevPure = start, true, false, start, false
}

// get returns unit k of the chain counting from the head, parsing as needed,
// or nil if the chain is shorter.
func (c *chain) get(k int) *unit {
	if k >= maxChain {
		return nil
	}
	for c.n <= k {
		if !c.more {
			return nil
		}
		u := &c.u[(c.head+c.n)%maxChain]
		parseUnit(u, c.text, c.next)
		if u.lead && c.started {
			// "4111 (1111": the '(' is punctuation, so the chain ends here and
			// the main loop rescans from the '('.
			c.more = false
			return nil
		}
		c.started = true
		c.n++
		c.end = u.end
		c.more = u.cont && !u.bad
		c.next = u.end + 1
	}
	return &c.u[(c.head+k)%maxChain]
}

// drop consumes k buffered units.
func (c *chain) drop(k int) {
	c.prevPure = c.get(k - 1).pure()
	c.head = (c.head + k) % maxChain
	c.n -= k
}

// scanChain matches the chain starting at start, appends its findings to dst
// and returns dst and the end of the chain.
func (s *Scanner) scanChain(c *chain, text string, start int, dst []Finding, base int) ([]Finding, int) {
	c.reset(text, start)
	for {
		u := c.get(0)
		if u == nil {
			return dst, c.end
		}
		m := s.matchAt(c)
		if m.k == 0 {
			c.drop(1)
			continue
		}
		dst = push(dst, base, Finding{Type: m.typ, Start: u.start, End: m.end})
		c.drop(m.k)
	}
}

// match is a candidate: typ spanning k units, ending at end.
type match struct {
	typ    string
	k, end int
}

// offer keeps the longer of m and the candidate, the more specific on a tie.
func (m *match) offer(typ string, k, end int) {
	if k > 0 && (end > m.end || end == m.end && rank(typ) > rank(m.typ)) {
		*m = match{typ: typ, k: k, end: end}
	}
}

// matchAt returns the best finding starting at the head of the chain, or a
// zero match.
func (s *Scanner) matchAt(c *chain) match {
	var m match
	u := c.get(0)
	if end, ok := ipv4Unit(c.text, u); ok {
		m.offer(IPAddress, 1, end)
		return m
	}
	if u.bad {
		return m
	}
	if u.plus {
		k, end := c.e164()
		m.offer(Phone, k, end)
		return m
	}
	k, end := c.card()
	m.offer(CreditCard, k, end)
	k, end = s.ssn(c)
	m.offer(USSSN, k, end)
	k, end = c.usPhone()
	m.offer(Phone, k, end)
	return m
}

// card matches a payment card number at the head of the chain.
func (c *chain) card() (k, end int) {
	u := c.get(0)
	if u.parens || u.digits > maxDigits {
		return 0, 0
	}
	var d [maxDigits]byte
	if u.ng > 1 || u.digits >= 13 { // one unit: bare, or dash-grouped
		if u.digits < 13 || !u.joinedBy('-') || u.ng > 1 && !cardGroups(u.g[:u.ng]) {
			return 0, 0
		}
		if validCard(d[:u.appendDigits(c.text, d[:], 0)]) {
			return 1, u.end
		}
		return 0, 0
	}
	// Space-grouped: the longest run of plain groups forming a valid card.
	if u.digits < 4 || u.digits > 6 {
		return 0, 0
	}
	var total [maxChain]int
	total[0] = u.digits
	last := 0
	for i := 1; i < maxChain; i++ {
		v := c.get(i)
		if v == nil || !v.pure() || v.digits < 3 || v.digits > 6 || total[i-1]+v.digits > maxDigits {
			break
		}
		total[i] = total[i-1] + v.digits
		last = i
	}
	for i := last; i >= 1 && total[i] >= 13; i-- {
		n := 0
		for j := 0; j <= i; j++ {
			n = c.get(j).appendDigits(c.text, d[:], n)
		}
		if validCard(d[:n]) {
			return i + 1, c.get(i).end
		}
	}
	return 0, 0
}

// cardGroups reports whether dash-separated groups look like a card layout.
func cardGroups(g []group) bool {
	if g[0].n < 4 || g[0].n > 6 {
		return false
	}
	for _, x := range g[1:] {
		if x.n < 3 || x.n > 6 {
			return false
		}
	}
	return true
}

// ssn matches a US social security number at the head of the chain.
func (s *Scanner) ssn(c *chain) (k, end int) {
	u := c.get(0)
	if u.parens {
		return 0, 0
	}
	var d [9]byte
	switch {
	case u.sizes(3, 2, 4) && u.joinedBy('-'):
		k, end = 1, u.end
	case u.pure() && u.digits == 9:
		if !s.ssnCue(c.text, u.start) {
			return 0, 0
		}
		k, end = 1, u.end
	case u.pure() && u.digits == 3 && !c.prevPure:
		v, w := c.get(1), c.get(2)
		if v == nil || w == nil || !v.pure() || v.digits != 2 || !w.pure() || w.digits != 4 {
			return 0, 0
		}
		if x := c.get(3); x != nil && x.pure() { // part of a longer run of groups
			return 0, 0
		}
		k, end = 3, w.end
	default:
		return 0, 0
	}
	n := 0
	for i := range k {
		n = c.get(i).appendDigits(c.text, d[:], n)
	}
	if n != 9 || !validSSN(d) {
		return 0, 0
	}
	return k, end
}

// ssnCue reports whether one of the scanner's cue words starts within
// s.ssnWindow bytes before i, at a word boundary.
func (s *Scanner) ssnCue(text string, i int) bool {
	lo := max(0, i-s.ssnWindow)
	for _, cue := range s.ssnCues {
		for p := lo; p+len(cue) <= i; p++ {
			if (p == 0 || !isLetter(text[p-1])) && hasPrefixFold(text[p:], cue) {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with the lowercase ASCII prefix,
// ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := s[i]
		if c-'A' < 26 {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// usPhone matches a US national phone number at the head of the chain.
func (c *chain) usPhone() (k, end int) {
	u := c.get(0)
	g := &u.g
	switch {
	case !u.parens && u.sizes(3, 3, 4) && (u.joinedBy('-') || u.joinedBy('.')):
		if areaCode(u.first(c.text, 0)) {
			return 1, u.end
		}
	case !u.parens && u.sizes(1, 3, 3, 4) && (u.joinedBy('-') || u.joinedBy('.')):
		if u.first(c.text, 0) == '1' && areaCode(u.first(c.text, 1)) {
			return 1, u.end
		}
	case u.sizes(3, 3, 4) && g[0].paren && !g[1].paren && !g[2].paren && g[1].sep == 0 && isDashOrDot(g[2].sep):
		if areaCode(u.first(c.text, 0)) { // (415)555-2671
			return 1, u.end
		}
	case u.sizes(3) && g[0].paren && areaCode(u.first(c.text, 0)):
		v := c.get(1)
		if v == nil || v.bad || v.plus || v.parens {
			return 0, 0
		}
		if v.sizes(3, 4) && isDashOrDot(v.g[1].sep) { // (415) 555-2671
			return 2, v.end
		}
		if w := c.get(2); v.pure() && v.digits == 3 && w != nil && w.pure() && w.digits == 4 {
			return 3, w.end // (415) 555 2671
		}
	}
	return 0, 0
}

func isDashOrDot(c byte) bool { return c == '-' || c == '.' }

// areaCode reports whether d can start a NANP area code.
func areaCode(d byte) bool { return d >= '2' && d <= '9' }

// e164 matches an international number written with a leading '+': the
// longest run of units with 8 to 15 digits (exactly 11 for country code 1).
func (c *chain) e164() (k, end int) {
	u := c.get(0)
	cc := u.first(c.text, 0)
	if cc == '0' {
		return 0, 0
	}
	total := 0
	for i := range maxChain {
		v := c.get(i)
		if v == nil || v.bad || v.odd || i > 0 && v.plus {
			break
		}
		total += v.digits
		if total > 15 {
			break
		}
		if total >= 8 && (cc != '1' || total == 11) {
			k, end = i+1, v.end
		}
	}
	return k, end
}
