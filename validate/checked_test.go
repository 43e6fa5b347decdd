package validate

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every stage that reaches a verdict says how much it checked, and names
// what it counted (one that could not finish says why instead): a stage
// that passes having checked nothing says "nothing to check", so a PASS
// never hides a stage that looked at nothing. The same holds for every
// named check of a stage.
func TestEveryStageSaysWhatItChecked(t *testing.T) {
	for _, name := range recorded {
		t.Run(name, func(t *testing.T) {
			in, _ := loadRecorded(t, name)
			for _, r := range Run(context.Background(), in, Options{}) {
				if r.Verdict == OK || r.Verdict == Illegal {
					require.NotEmpty(t, r.CheckedWhat, "%s does not name what it counts", r.Validator)
				}
				if r.Verdict == OK && r.Checked == 0 {
					require.True(t, strings.HasPrefix(r.Message, "nothing to check"), "%s passed having checked nothing: %s", r.Validator, r.Message)
				}
				for _, nc := range r.Checks {
					if nc.Verdict == OK && nc.Checked == 0 {
						require.True(t, strings.HasPrefix(nc.Message, "nothing to check"), "%s/%s passed having checked nothing: %s", r.Validator, nc.Name, nc.Message)
					}
				}
			}
		})
	}
}
