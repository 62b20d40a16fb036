package config

import (
	"strconv"
	"strings"
)

// lineIndex maps the tables and keys of a TOML document to the line where
// they are defined. BurntSushi/toml v1.6.0 records key positions only in an
// unexported field (and, for arrays of tables, only the last element's), so
// the loader scans the raw text itself.
//
// A path is the list of key components from the document root. A component
// that is an element of an array of tables carries its index: the second
// [[inputs.netflow]] is "inputs", "netflow#1", and a key under it is
// "inputs", "netflow#1", "address".
type lineIndex struct {
	lines map[string]int
}

func pathKey(p []string) string { return strings.Join(p, "\x1f") }

// line returns the line of a path, or 0 when it is not known.
func (x *lineIndex) line(p []string) int { return x.lines[pathKey(p)] }

// nearest returns the line of the path or of its closest ancestor that has
// one, or 0.
func (x *lineIndex) nearest(p []string) int {
	for n := len(p); n > 0; n-- {
		if l := x.lines[pathKey(p[:n])]; l > 0 {
			return l
		}
	}
	return 0
}

func (x *lineIndex) set(p []string, line int) {
	k := pathKey(p)
	if _, ok := x.lines[k]; !ok {
		x.lines[k] = line
	}
}

// indexLines scans a TOML document that has already been parsed successfully
// (so it is well formed) and records where each table header and key is.
func indexLines(text string) *lineIndex {
	x := &lineIndex{lines: map[string]int{}}
	arrays := map[string]int{} // indexed path of an array of tables -> elements seen
	var table []string         // current table, indexed
	// resolve turns a header's plain components into an indexed path: every
	// prefix that is an array of tables gets the index of its last element.
	resolve := func(comps []string) []string {
		out := make([]string, 0, len(comps))
		for _, c := range comps {
			out = append(out, c)
			if n, ok := arrays[pathKey(out)]; ok {
				out[len(out)-1] = c + "#" + strconv.Itoa(n-1)
			}
		}
		return out
	}

	line := 1
	state := stCode
	depth := 0
	atStart := true
	for i := 0; i < len(text); {
		c := text[i]
		if state&^closeBit == stCode && depth == 0 && atStart && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '#' {
			atStart = false
			eol := strings.IndexByte(text[i:], '\n')
			if eol < 0 {
				eol = len(text) - i
			}
			if c == '[' {
				rest := text[i:]
				array := strings.HasPrefix(rest, "[[")
				open, closer := "[", "]"
				if array {
					open, closer = "[[", "]]"
				}
				end := strings.Index(rest, closer)
				if comps, ok := parseKeyPath(rest[len(open):max(end, len(open))]); end > 0 && ok {
					if array {
						p := resolve(comps[:len(comps)-1])
						p = append(p, comps[len(comps)-1])
						k := pathKey(p)
						arrays[k]++
						p[len(p)-1] += "#" + strconv.Itoa(arrays[k]-1)
						table = p
					} else {
						table = resolve(comps)
					}
					for n := 1; n <= len(table); n++ {
						x.set(table[:n], line)
					}
				}
				// Skip the rest of the header line (at most a comment).
				i += eol
				continue
			}
			if eq := keyEnd(text[i : i+eol]); eq > 0 {
				if comps, ok := parseKeyPath(text[i : i+eq]); ok {
					p := append(append([]string(nil), table...), comps...)
					for n := len(table) + 1; n <= len(p); n++ {
						x.set(p[:n], line)
					}
				}
				i += eq + 1
				continue
			}
		}
		if state&^closeBit == stCode {
			switch c {
			case '[', '{':
				depth++
			case ']', '}':
				if depth > 0 {
					depth--
				}
			}
		}
		if c == '\n' {
			line++
		}
		state, i = lexStep(text, i, state)
		if c == '\n' && depth == 0 && (state&^closeBit == stCode || state == stComment) {
			state = stCode
			atStart = true
		}
	}
	return x
}

// keyEnd returns the index of the "=" that ends the key at the start of s,
// skipping quoted key components, or -1.
func keyEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '=':
			return i
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(s) && s[i] != '\''; i++ {
			}
		}
	}
	return -1
}

// parseKeyPath splits a TOML key ("a.b", `a."b.c"`, "a . 'b'") into its
// components.
func parseKeyPath(s string) ([]string, bool) {
	var comps []string
	s = strings.TrimSpace(s)
	for s != "" {
		var comp string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, false
			}
			u, err := strconv.Unquote(s[:end+1])
			if err != nil {
				u = s[1:end]
			}
			comp, s = u, s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, false
			}
			comp, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexAny(s, ". \t")
			if end < 0 {
				end = len(s)
			}
			comp, s = s[:end], s[end:]
		}
		comps = append(comps, comp)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return comps, len(comps) > 0
}
