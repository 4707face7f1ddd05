package pii

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// tokenRun returns the end of the run of bytes from i for which ok holds.
func tokenRun(text string, i int, ok func(byte) bool) int {
	for i < len(text) && ok(text[i]) {
		i++
	}
	return i
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool { return isDigit(c) || isLetter(c) }

// isB64URL reports whether c is in the base64url alphabet.
func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// leftFree reports whether a secret may start at s: the byte before it is
// not part of a token.
func leftFree(text string, s int) bool { return s == 0 || !isTokenByte(text[s-1]) }

// hasDigitAndLetter reports whether b holds both an ASCII digit and letter.
func hasDigitAndLetter(b string) bool {
	d, l := false, false
	for i := range len(b) {
		d = d || isDigit(b[i])
		l = l || isLetter(b[i])
	}
	return d && l
}

// OpenAI and Anthropic key kinds after "sk-"; the first match wins.
var skKinds = [...]string{"ant-", "proj-", "svcacct-", "admin-"}

// matchDash matches "sk-…" (OpenAI, Anthropic) and "xoxb-…" (Slack) keys
// around the '-' at text[t].
func matchDash(text string, t int) (Finding, bool) {
	switch {
	case t >= 2 && text[t-2] == 's' && text[t-1] == 'k' && leftFree(text, t-2):
		e := tokenRun(text, t+1, isB64URL)
		body := text[t+1 : e]
		for _, k := range skKinds {
			if strings.HasPrefix(body, k) {
				body = body[len(k):]
				break
			}
		}
		if len(body) >= 20 && hasDigitAndLetter(body) {
			return Finding{Type: APIKey, Start: t - 2, End: e}, true
		}
	case t >= 4 && text[t-4:t-1] == "xox" && strings.IndexByte("bpar", text[t-1]) >= 0 && leftFree(text, t-4):
		e := tokenRun(text, t+1, func(c byte) bool { return isAlnum(c) || c == '-' })
		if e-t-1 >= 10 && hasDigitAndLetter(text[t-4:e]) && (e == len(text) || text[e] != '_') {
			return Finding{Type: APIKey, Start: t - 4, End: e}, true
		}
	}
	return Finding{}, false
}

// matchUnderscore matches GitHub ("ghp_…", "github_pat_…") and Stripe
// ("sk_live_…") keys around the '_' at text[t].
func matchUnderscore(text string, t int) (Finding, bool) {
	n := len(text)
	var s, body, minBody int
	alnumOnly := true
	switch {
	case t >= 3 && text[t-3:t-1] == "gh" && strings.IndexByte("pousr", text[t-1]) >= 0:
		s, body, minBody = t-3, t+1, 30
	case t >= 6 && text[t-6:t] == "github" && strings.HasPrefix(text[t:], "_pat_"):
		s, body, minBody, alnumOnly = t-6, t+5, 40, false
	case t >= 2 && (text[t-2:t] == "sk" || text[t-2:t] == "rk") &&
		(strings.HasPrefix(text[t:], "_live_") || strings.HasPrefix(text[t:], "_test_")):
		s, body, minBody = t-2, t+6, 16
	default:
		return Finding{}, false
	}
	if !leftFree(text, s) {
		return Finding{}, false
	}
	ok := isAlnum
	if !alnumOnly {
		ok = isWordByte
	}
	e := tokenRun(text, body, ok)
	if e-body < minBody || e < n && isTokenByte(text[e]) {
		return Finding{}, false
	}
	return Finding{Type: APIKey, Start: s, End: e}, true
}

// matchAWS matches an AWS access key id starting at the 'A' at text[t].
func matchAWS(text string, t int) (Finding, bool) {
	const n = 20
	if t+n > len(text) || !leftFree(text, t) || text[t+2] != 'I' || text[t+3] != 'A' || text[t+1] != 'K' && text[t+1] != 'S' {
		return Finding{}, false
	}
	for i := t + 4; i < t+n; i++ {
		if !isUpper(text[i]) && !isDigit(text[i]) {
			return Finding{}, false
		}
	}
	if t+n < len(text) && isTokenByte(text[t+n]) {
		return Finding{}, false
	}
	return Finding{Type: AWSAccessKey, Start: t, End: t + n}, true
}

// maxPEM bounds the size of a private-key block and of the label line.
const (
	maxPEM      = 64 << 10
	maxPEMLabel = 64
)

// pemLabel parses "<label>-----" at text[i:] where the label ends in
// "PRIVATE KEY" and holds capital letters and spaces, and returns the label
// and the end of the dashes.
func pemLabel(text string, i int) (string, int, bool) {
	k := strings.Index(text[i:min(len(text), i+maxPEMLabel)], "-----")
	if k < 0 {
		return "", 0, false
	}
	label := text[i : i+k]
	if !strings.HasSuffix(label, "PRIVATE KEY") {
		return "", 0, false
	}
	for j := range len(label) {
		if c := label[j]; !isUpper(c) && c != ' ' {
			return "", 0, false
		}
	}
	return label, i + k + 5, true
}

// isPEMBody reports whether c may appear in a base64 PEM body, line breaks
// and JSON-escaped line breaks ("\n") included.
func isPEMBody(c byte) bool {
	return isAlnum(c) || c == '+' || c == '/' || c == '=' || c == '\n' || c == '\r' || c == '\\'
}

// matchPEM matches a private-key block whose "BEGIN" starts at text[t],
// after five dashes.
func matchPEM(text string, t int) (Finding, bool) {
	if t < 5 || text[t-5:t] != "-----" || !strings.HasPrefix(text[t:], "BEGIN ") {
		return Finding{}, false
	}
	label, h, ok := pemLabel(text, t+6)
	if !ok {
		return Finding{}, false
	}
	s := t - 5
	limit := min(len(text), s+maxPEM)
	marker := "-----END " + label + "-----"
	if k := strings.Index(text[h:limit], marker); k >= 0 {
		return Finding{Type: PrivateKey, Start: s, End: h + k + len(marker)}, true
	}
	// No END line: take the body that follows, so that a truncated key is
	// masked too.
	e := h
	for e < limit && isPEMBody(text[e]) {
		e++
	}
	return Finding{Type: PrivateKey, Start: s, End: e}, true
}

// matchPEMEnd matches an "-----END … PRIVATE KEY-----" line whose "END"
// starts at text[t], with the base64 body before it: the tail of a key whose
// BEGIN line is missing or was cut off.
func matchPEMEnd(text string, t int) (Finding, bool) {
	if t < 5 || text[t-5:t] != "-----" || !strings.HasPrefix(text[t:], "END ") {
		return Finding{}, false
	}
	_, e, ok := pemLabel(text, t+4)
	if !ok {
		return Finding{}, false
	}
	s := t - 5
	for s > 0 && t-s < maxPEM && isPEMBody(text[s-1]) {
		s--
	}
	for s < t-5 && (text[s] == '\n' || text[s] == '\r') {
		s++
	}
	return Finding{Type: PrivateKey, Start: s, End: e}, true
}

// maxJWTHeader bounds the encoded JWT header that matchJWT decodes.
const maxJWTHeader = 2048

// matchJWT matches a JSON web token whose header segment ends at the '.'
// at text[t]. The header must start "eyJ" (base64url of `{"`).
func matchJWT(text string, t int) (Finding, bool) {
	if t < 10 || !isB64URL(text[t-1]) {
		return Finding{}, false
	}
	s := t
	for s > 0 && t-s <= maxJWTHeader && isB64URL(text[s-1]) {
		s--
	}
	hdrEnd := t
	if t-s > maxJWTHeader || t-s < 10 || !strings.HasPrefix(text[s:], "eyJ") || !leftFree(text, s) || s > 0 && text[s-1] == '.' {
		return Finding{}, false
	}
	n := len(text)
	segs, e := 1, hdrEnd
	for e+1 < n && text[e] == '.' && isB64URL(text[e+1]) && segs < 5 {
		e = tokenRun(text, e+1, isB64URL)
		segs++
	}
	if segs != 3 && segs != 5 || e < n && isTokenByte(text[e]) {
		return Finding{}, false
	}
	var buf [maxJWTHeader * 3 / 4]byte
	k, err := base64.RawURLEncoding.Decode(buf[:], []byte(text[s:hdrEnd]))
	if err != nil {
		return Finding{}, false
	}
	h := bytes.TrimSpace(buf[:k])
	if len(h) < 2 || h[0] != '{' || !bytes.Contains(h, []byte(`"alg"`)) || !json.Valid(h) {
		return Finding{}, false
	}
	return Finding{Type: JWT, Start: s, End: e}, true
}
