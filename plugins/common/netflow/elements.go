package netflow

import "strconv"

// Well-known private enterprise numbers.
const (
	PENCisco     = 9
	PENNokia     = 637
	PENIxia      = 3054
	PENNetScaler = 5951
	PENCERT      = 6871 // CERT NetSA (YAF)
	PENVMware    = 6876
	PENBarracuda = 10704
	PENReverse   = 29305 // RFC 5103 reverse information elements
	PENNtop      = 35632
	PENViptela   = 41916
)

// ElementName returns the name of an information element: the IANA name for
// enterprise 0, "reverse" + the IANA name for the RFC 5103 reverse PEN 29305,
// the vendor's name for the well-known enterprise elements, and otherwise a
// generic "<enterprise>.<id>" (or the decimal id for IANA elements without a
// name in the table).
func ElementName(enterprise uint32, id uint16) string {
	if enterprise == 0 {
		if n, ok := ianaNames[id]; ok {
			return n
		}
		return strconv.Itoa(int(id))
	}
	if enterprise == PENReverse {
		if n, ok := ianaNames[id]; ok {
			return "reverse" + string(n[0]-'a'+'A') + n[1:]
		}
	}
	if m, ok := enterpriseNames[enterprise]; ok {
		if n, ok := m[id]; ok {
			return n
		}
	}
	return strconv.FormatUint(uint64(enterprise), 10) + "." + strconv.Itoa(int(id))
}
