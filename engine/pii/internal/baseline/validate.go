package baseline

// validCard reports whether d (ASCII digits) is a Luhn-valid number with the
// prefix and length of a known card brand.
func validCard(d []byte) bool {
	return len(d) >= 13 && len(d) <= 19 && cardBrand(d) && luhn(d)
}

// cardBrand reports whether the prefix and length of d (13–19 ASCII digits)
// belong to a known brand.
func cardBrand(d []byte) bool {
	l := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p3 := p2*10 + int(d[2]-'0')
	p4 := p3*10 + int(d[3]-'0')
	switch {
	case d[0] == '4': // Visa
		return l == 13 || l == 16 || l == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return l == 16
	case p2 == 34, p2 == 37: // American Express
		return l == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649: // Discover
		return l == 16 || l == 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return l >= 16
	case p2 == 36, p2 == 38, p2 == 39, p3 >= 300 && p3 <= 305: // Diners Club
		return l >= 14
	case p2 == 62: // UnionPay
		return l >= 16
	}
	return false
}

// luhn reports whether the ASCII digits d pass the Luhn (mod 10) check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		x := int(d[i] - '0')
		if double {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
		double = !double
	}
	return sum%10 == 0
}

// validSSN reports whether d is an SSN the SSA could have issued: area not
// 000, 666 or 900–999, group not 00, serial not 0000.
func validSSN(d [9]byte) bool {
	area := int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	if area == 0 || area == 666 || area >= 900 {
		return false
	}
	if d[3] == '0' && d[4] == '0' {
		return false
	}
	return d[5] != '0' || d[6] != '0' || d[7] != '0' || d[8] != '0'
}
