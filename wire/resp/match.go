package resp

// match.go owns Match, Redis's glob-style pattern for KEYS and SCAN
// MATCH, and Prefix, the literal start of a pattern. Pure: the caller's
// goroutine.

// Match reports whether s matches pattern: '*' any run of bytes, '?' one
// byte, [abc], [^abc] and [a-z] one byte of a set, '\' quotes the next
// byte. It runs in O(len(pattern)·len(s)): one remembered '*' to fall back
// to, as a glob needs no more.
func Match(pattern, s string) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if end, ok := matchClass(pattern, p, s[i]); ok {
					p = end
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == s[i] {
					p += 2
					i++
					continue
				}
				if p+1 == len(pattern) && s[i] == '\\' {
					p++
					i++
					continue
				}
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the class starting at pattern[p] == '[' and
// returns the index after the class and whether b is in it. A class
// without its ']' runs to the end of the pattern, as in Redis.
func matchClass(pattern string, p int, b byte) (int, bool) {
	p++
	neg := p < len(pattern) && pattern[p] == '^'
	if neg {
		p++
	}
	in := false
	for p < len(pattern) && pattern[p] != ']' {
		switch {
		case pattern[p] == '\\' && p+1 < len(pattern):
			p++
			in = in || pattern[p] == b
			p++
		case p+2 < len(pattern) && pattern[p+1] == '-' && pattern[p+2] != ']':
			lo, hi := pattern[p], pattern[p+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			in = in || (lo <= b && b <= hi)
			p += 3
		default:
			in = in || pattern[p] == b
			p++
		}
	}
	if p < len(pattern) {
		p++ // the ']'
	}
	return p, in != neg
}

// Prefix returns the literal bytes every match of pattern starts with, so
// a listing can be narrowed to them before matching.
func Prefix(pattern string) string {
	out := make([]byte, 0, len(pattern))
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?', '[':
			return string(out)
		case '\\':
			if i+1 == len(pattern) {
				return string(out)
			}
			i++
			out = append(out, pattern[i])
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
