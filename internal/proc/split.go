package proc

import (
	"fmt"
	"strings"
)

// SplitCommand splits a command line into its argv the way a POSIX shell splits words, without
// running a shell: words are separated by spaces and tabs; single quotes keep everything
// literally; double quotes keep spaces and let a backslash escape ", \ and $; a backslash outside
// quotes escapes the next character. No variables, globs or redirections are expanded.
func SplitCommand(s string) ([]string, error) {
	var (
		argv    []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				argv = append(argv, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("%q: a %c quote is not closed", s, quote)
	case escaped:
		return nil, fmt.Errorf("%q: ends with a backslash", s)
	}
	if inWord {
		argv = append(argv, cur.String())
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%q: no command", s)
	}
	return argv, nil
}
