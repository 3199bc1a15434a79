package logparse

// skipValue steps over one JSON value without decoding it, checking its
// structure: brackets must balance and strings must be well formed.
func skipValue(b []byte, i int) (int, error) {
	var stack [maxJSONDepth]byte // expected closing bracket per level
	depth := 0
	expectValue := true
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, errJSON
		}
		c := b[i]
		if expectValue {
			switch {
			case c == '"':
				j, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = j
			case c == '{' || c == '[':
				if depth == maxJSONDepth {
					return 0, errTooDeep
				}
				if c == '{' {
					stack[depth] = '}'
				} else {
					stack[depth] = ']'
				}
				depth++
				i = skipSpace(b, i+1)
				if i < len(b) && b[i] == stack[depth-1] {
					depth--
					i++
					break
				}
				if c == '{' {
					j, err := skipKey(b, i)
					if err != nil {
						return 0, err
					}
					i = j
				}
				continue // a value follows
			case c == '-' || (c >= '0' && c <= '9'):
				for i < len(b) && isNumberByte(b[i]) {
					i++
				}
			case hasLiteral(b, i, "true"):
				i += 4
			case hasLiteral(b, i, "false"):
				i += 5
			case hasLiteral(b, i, "null"):
				i += 4
			default:
				return 0, errJSON
			}
			expectValue = false
		}
		if depth == 0 {
			return i, nil
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, errJSON
		}
		switch b[i] {
		case ',':
			i++
			if stack[depth-1] == '}' {
				j, err := skipKey(b, skipSpace(b, i))
				if err != nil {
					return 0, err
				}
				i = j
			}
			expectValue = true
		case stack[depth-1]:
			depth--
			i++
		default:
			return 0, errJSON
		}
	}
}

// skipKey steps over `"key" :` at b[i], returning the index after the colon.
func skipKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errJSON
	}
	j, err := skipString(b, i)
	if err != nil {
		return 0, err
	}
	j = skipSpace(b, j)
	if j >= len(b) || b[j] != ':' {
		return 0, errJSON
	}
	return j + 1, nil
}

func skipString(b []byte, i int) (int, error) {
	for j := i + 1; ; {
		j = findSpecial(b, j)
		switch {
		case j < 0 || b[j] < 0x20:
			return 0, errJSON
		case b[j] == '"':
			return j + 1, nil
		}
		j += 2 // a backslash: the escaped byte cannot end the string
	}
}
