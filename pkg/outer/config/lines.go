package config

import (
	"strconv"
	"strings"
)

// lineIndex maps a key path to the line that defines it. The TOML library
// keeps key positions to itself, so errors about a decoded value find their
// line here: a scan of table headers and "key =" lines, good for the way
// people write configuration files. A key it cannot place (inside an inline
// table) gets the line of the nearest enclosing key it can.
type lineIndex map[string]int

func (ix lineIndex) add(path []string, line int) {
	k := strings.Join(path, "\x00")
	if _, ok := ix[k]; !ok {
		ix[k] = line
	}
}

// find returns the line of path, or of its longest prefix that has one;
// 0 when none has.
func (ix lineIndex) find(path []string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := ix[strings.Join(path[:n], "\x00")]; ok {
			return l
		}
	}
	return 0
}

func keyLines(data []byte) lineIndex {
	ix := lineIndex{}
	var table []string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		n := i + 1
		switch {
		case l == "" || l[0] == '#':
		case strings.HasPrefix(l, "[["):
			if parts, rest, ok := readKeyPath(l[2:]); ok && strings.HasPrefix(rest, "]]") {
				table = parts
				ix.add(parts, n)
			}
		case l[0] == '[':
			if parts, rest, ok := readKeyPath(l[1:]); ok && strings.HasPrefix(rest, "]") {
				table = parts
				ix.add(parts, n)
			}
		default:
			parts, rest, ok := readKeyPath(l)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			full := append(append([]string{}, table...), parts...)
			for j := len(table) + 1; j <= len(full); j++ {
				ix.add(full[:j], n) // a dotted key defines its prefixes here
			}
			// A multi-line string's lines are not keys.
			val := strings.TrimSpace(rest[1:])
			for _, q := range []string{`"""`, `'''`} {
				if strings.HasPrefix(val, q) && !strings.Contains(val[3:], q) {
					for i++; i < len(lines) && !strings.Contains(lines[i], q); i++ {
					}
				}
			}
		}
	}
	return ix
}

// readKeyPath reads a dotted key (bare, "basic" or 'literal' parts) at the
// start of s and returns its parts and what follows, trimmed.
func readKeyPath(s string) ([]string, string, bool) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
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
				return nil, "", false
			}
			u, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, "", false
			}
			part, s = u, s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := 0
			for end < len(s) && isBare(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
