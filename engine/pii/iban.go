package pii

// ibanLengths lists the IBAN length of every country in the SWIFT IBAN
// registry as "CCnn" entries.
const ibanLengths = "" +
	"AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24" +
	"DE22DJ27DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27" +
	"GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20" +
	"LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28" +
	"PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28" +
	"TL23TN24TR26UA29VA22VG24XK20YE30"

// maxIBAN is the longest IBAN in the registry.
const maxIBAN = 34

// ibanLength returns the IBAN length for country code cc, or 0.
func ibanLength(a, b byte) int {
	for i := 0; i+4 <= len(ibanLengths); i += 4 {
		if ibanLengths[i] == a && ibanLengths[i+1] == b {
			return int(ibanLengths[i+2]-'0')*10 + int(ibanLengths[i+3]-'0')
		}
	}
	return 0
}

// matchIBAN matches an IBAN whose check digits start at the digit text[t].
func matchIBAN(text string, t int) (Finding, bool) {
	n := len(text)
	s := t - 2
	if s < 0 || !isUpper(text[s]) || !isUpper(text[s+1]) || t+1 >= n || !isDigit(text[t+1]) {
		return Finding{}, false
	}
	if s > 0 && isTokenByte(text[s-1]) {
		return Finding{}, false
	}
	want := ibanLength(text[s], text[s+1])
	if want == 0 {
		return Finding{}, false
	}
	var buf [maxIBAN]byte
	k := 0
	i := s
	spaced := false
	for i < n && k < want {
		c := text[i]
		switch {
		case isUpper(c) || isDigit(c):
			buf[k] = c
			k++
			i++
		case c == ' ' && k%4 == 0 && (k == 4 || spaced) && i+1 < n && (isUpper(text[i+1]) || isDigit(text[i+1])):
			spaced = true // groups of four: "DE89 3704 …"
			i++
		default:
			return Finding{}, false
		}
	}
	if k != want || i < n && isTokenByte(text[i]) {
		return Finding{}, false
	}
	if !mod97(buf[:k]) {
		return Finding{}, false
	}
	return Finding{Type: IBAN, Start: s, End: i}, true
}

// mod97 reports whether the IBAN characters d (capital letters and digits)
// pass the ISO 7064 MOD 97-10 check: moved first four characters to the
// end, letters as 10–35, the number modulo 97 is 1.
func mod97(d []byte) bool {
	if len(d) < 5 {
		return false
	}
	r := 0
	for i := range len(d) {
		c := d[(i+4)%len(d)]
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case isUpper(c):
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
	}
	return r == 1
}
