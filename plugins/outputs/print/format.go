package print

import (
	"errors"
	"strconv"
	"time"
)

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
