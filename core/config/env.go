package config

import (
	"fmt"
	"os"
	"strings"
)

// substituteEnv replaces ${NAME} and ${NAME:-default} with the environment's
// values in the raw text, outside TOML comments, the way Telegraf does. With
// ":-", the default is used when NAME is unset or empty. A variable that is
// unset and has no default is an error naming the file, the line and the
// variable. Text that is not a well-formed reference (a lone "$", "${" with
// no closing brace or a bad name) is left as it is.
func substituteEnv(file, text string) (string, error) {
	if !strings.Contains(text, "${") {
		return text, nil
	}
	var (
		b     strings.Builder
		line  = 1
		state = stCode
		errs  []*Error
	)
	b.Grow(len(text))
	for i := 0; i < len(text); {
		c := text[i]
		if c == '$' && state != stComment && i+1 < len(text) && text[i+1] == '{' {
			if end := strings.IndexByte(text[i+2:], '}'); end >= 0 {
				ref := text[i+2 : i+2+end]
				name, def, hasDef := strings.Cut(ref, ":-")
				if isEnvName(name) {
					val, set := os.LookupEnv(name)
					switch {
					case hasDef && val == "":
						val = def
					case !set:
						errs = append(errs, &Error{File: file, Line: line, Msg: fmt.Sprintf("environment variable %q is not set (use ${%s:-default} for a default)", name, name)})
					}
					b.WriteString(val)
					i += 2 + end + 1
					continue
				}
			}
		}
		b.WriteByte(c)
		if c == '\n' {
			line++
		}
		state, i = lexStep(text, i, state)
	}
	if len(errs) > 0 {
		return "", joinErrors(errs)
	}
	return b.String(), nil
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// Lexer states, just enough of TOML to tell comments from strings.
const (
	stCode      = iota
	stComment   // # ... up to the end of the line
	stBasic     // "..."
	stLiteral   // '...'
	stMLBasic   // """..."""
	stMLLiteral // '''...'''
)

// lexStep advances over the byte at text[i], which has already been copied
// by the caller, and returns the new state and the index of the next byte to
// look at. Multi-byte tokens (""" and ”' and escapes) are handled by
// returning an index past them; the caller copies those bytes in later calls
// because lexStep only ever skips bytes that need no substitution.
func lexStep(text string, i int, state int) (int, int) {
	c := text[i]
	switch state {
	case stCode:
		switch c {
		case '#':
			return stComment, i + 1
		case '"':
			if strings.HasPrefix(text[i:], `"""`) {
				return stMLBasic, i + 1 // the other two quotes are plain bytes
			}
			return stBasic, i + 1
		case '\'':
			if strings.HasPrefix(text[i:], `'''`) {
				return stMLLiteral, i + 1
			}
			return stLiteral, i + 1
		}
	case stComment:
		if c == '\n' {
			return stCode, i + 1
		}
	case stBasic:
		switch c {
		case '\\':
			return stBasic | escBit, i + 1
		case '"', '\n':
			return stCode, i + 1
		}
	case stBasic | escBit:
		return stBasic, i + 1
	case stLiteral:
		if c == '\'' || c == '\n' {
			return stCode, i + 1
		}
	case stMLBasic:
		switch c {
		case '\\':
			return stMLBasic | escBit, i + 1
		case '"':
			if strings.HasPrefix(text[i:], `"""`) {
				return stCode | closeBit, i + 1
			}
		}
	case stMLBasic | escBit:
		return stMLBasic, i + 1
	case stMLLiteral:
		if c == '\'' && strings.HasPrefix(text[i:], `'''`) {
			return stCode | closeBit, i + 1
		}
	}
	if state&closeBit != 0 {
		// Swallow the rest of a closing """ or ''' (TOML allows up to two
		// extra quotes before it, which belong to the string; they need no
		// substitution either way).
		if c == '"' || c == '\'' {
			return state, i + 1
		}
		return lexStep(text, i, state&^closeBit)
	}
	return state, i + 1
}

const (
	escBit   = 1 << 4
	closeBit = 1 << 5
)
