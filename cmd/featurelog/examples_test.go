package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
)

// TestEveryCommandHasAnExample: every command a user can run shows an
// example in its help, every example names the command, and its flags
// parse (an example with a misspelled or removed flag fails).
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.Hidden || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "featurelog completion") {
			return
		}
		if assert.NotEmpty(t, c.Example, "%s has no Example", c.CommandPath()) {
			assert.Contains(t, c.Example, c.CommandPath(), "%s: its Example does not run it", c.CommandPath())
		}
		for _, line := range strings.Split(c.Example, "\n") {
			args := splitArgs(strings.TrimSpace(line))
			if len(args) == 0 || args[0] != "featurelog" {
				continue
			}
			root := newRoot()
			cmd, rest, err := root.Find(args[1:])
			if assert.NoError(t, err, "%s: example %q", c.CommandPath(), line) {
				assert.NoError(t, cmd.ParseFlags(rest), "%s: example %q", c.CommandPath(), line)
			}
		}
	}
	walk(newRoot())
}

// splitArgs splits a command line on spaces outside double quotes.
func splitArgs(line string) []string {
	var args []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		args = append(args, cur.String())
	}
	return args
}

func TestSplitArgs(t *testing.T) {
	assert.Equal(t, []string{"featurelog", "x", "--d", "two words", "--e="}, splitArgs(`featurelog x  --d "two words" --e=`))
}
