package releases

import (
	"bufio"
	"encoding/json"
	"strings"
)

// FirstErrorLine is the first zap line of level error, fatal or panic in
// log (or a bare "panic:" line), as "level: msg: error".
func FirstErrorLine(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "panic:") {
			return line
		}
		var z struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &z) != nil {
			continue
		}
		switch z.Level {
		case "error", "fatal", "panic":
			if z.Error != "" {
				return z.Level + ": " + z.Msg + ": " + z.Error
			}
			return z.Level + ": " + z.Msg
		}
	}
	return "(no error line in the log)"
}
