package print

import (
	"errors"
	"net/netip"
	"strconv"
	"time"
)

// appendAddr appends an address; an absent one prints as 0.0.0.0, as nfacctd
// prints a selected but unset address.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, "0.0.0.0"...)
	}
	return a.Unmap().AppendTo(b)
}

// network masks a to bits (net_src / net_dst). The aggregate processor
// already stores the network for src_net/dst_net; masking again is harmless
// and makes unaggregated records print the right network. A zero mask leaves
// the address as it is.
func network(a netip.Addr, bits uint8) netip.Addr {
	if !a.IsValid() || bits == 0 {
		return a
	}
	pfx, err := a.Prefix(int(bits))
	if err != nil {
		return a
	}
	return pfx.Addr()
}

// stampCache keeps the formatted "YYYY-MM-DD HH:MM:SS" of one second: a batch
// of aggregates shares one or two stamps, so formatting happens rarely.
type stampCache struct {
	ok  bool
	sec int64
	b   [19]byte
}

const stampLayout = "2006-01-02 15:04:05"

// appendStamp appends a Unix-nanosecond stamp as "YYYY-MM-DD HH:MM:SS" in the
// configured zone.
func (p *Print) appendStamp(b []byte, ns int64) []byte {
	sec := ns / 1e9
	if ns < 0 && ns%1e9 != 0 {
		sec--
	}
	for i := range p.stamps {
		if c := &p.stamps[i]; c.ok && c.sec == sec {
			return append(b, c.b[:]...)
		}
	}
	c := &p.stamps[p.next]
	p.next = (p.next + 1) % len(p.stamps)
	out := time.Unix(sec, 0).In(p.loc).AppendFormat(c.b[:0], stampLayout)
	if len(out) != len(c.b) { // years beyond 9999 or before 0: do not cache
		c.ok = false
		return append(b, out...)
	}
	c.ok, c.sec = true, sec
	return append(b, c.b[:]...)
}

// appendMicro appends "YYYY-MM-DD HH:MM:SS.uuuuuu" (timestamp_start, _end,
// _arrival, as nfacctd prints them without timestamps_secs).
func (p *Print) appendMicro(b []byte, ns int64) []byte {
	b = p.appendStamp(b, ns)
	frac := ns % 1e9
	if frac < 0 {
		frac += 1e9
	}
	us := frac / 1000
	b = append(b, '.')
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = byte('0' + us%10)
		us /= 10
	}
	return append(b, d[:]...)
}

// checkName rejects a file name whose % directives Flowline does not expand.
func checkName(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '%' {
			continue
		}
		if i+1 == len(name) {
			return errors.New("ends with a lone %")
		}
		i++
		switch name[i] {
		case 'Y', 'm', 'd', 'H', 'M', 'S', 's', 'w', 'z', '%':
		default:
			return errors.New("unsupported directive %" + string(name[i]) + " (supported: %Y %m %d %H %M %S %s %w %z %%)")
		}
	}
	return nil
}

// expandName expands pmacct's print_output_file time variables.
func expandName(b []byte, name string, t time.Time) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' || i+1 == len(name) {
			b = append(b, c)
			continue
		}
		i++
		switch name[i] {
		case 'Y':
			b = appendPad(b, t.Year(), 4)
		case 'm':
			b = appendPad(b, int(t.Month()), 2)
		case 'd':
			b = appendPad(b, t.Day(), 2)
		case 'H':
			b = appendPad(b, t.Hour(), 2)
		case 'M':
			b = appendPad(b, t.Minute(), 2)
		case 'S':
			b = appendPad(b, t.Second(), 2)
		case 's':
			b = strconv.AppendInt(b, t.Unix(), 10)
		case 'w':
			b = appendPad(b, int(t.Weekday()), 1)
		case 'z':
			b = t.AppendFormat(b, "-0700")
		case '%':
			b = append(b, '%')
		default:
			b = append(b, '%', name[i])
		}
	}
	return b
}

func appendPad(b []byte, v, width int) []byte {
	var d [20]byte
	n := len(d)
	neg := v < 0
	if neg {
		v = -v
	}
	for v > 0 || len(d)-n < width {
		n--
		d[n] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		b = append(b, '-')
	}
	return append(b, d[n:]...)
}
