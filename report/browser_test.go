package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chromium finds Debian's chromium. Without it the test skips, unless
// ETCD_ROBUSTNESS_BROWSER is set (make test-browser sets it), when it fails.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("ETCD_ROBUSTNESS_BROWSER") != "" {
		t.Fatal("chromium is not installed (make test-browser installs it with apt-get)")
	}
	t.Skip("chromium is not installed; `make test-browser` installs it and runs this test")
	return ""
}

// headless runs chromium on a local page and returns its output; the
// console messages (script errors among them) go to stderr.
func headless(t *testing.T, bin string, args ...string) (stdout, stderr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--enable-logging=stderr", "--v=0", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), errb.String())
	return out.String(), errb.String()
}

// scriptErrors are the console lines that report an error in a page.
func scriptErrors(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "CONSOLE") && (strings.Contains(l, "Uncaught") || strings.Contains(l, "Error")) {
			out = append(out, l)
		}
	}
	return out
}

// TestBrowser opens index.html and history.html of a failing report in
// headless chromium, checks what they show after their scripts ran, and
// keeps a screenshot of each in the report. ETCD_ROBUSTNESS_BROWSER_REPORT
// names a report to open instead of the built one (e.g. a real failing run).
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	dir := os.Getenv("ETCD_ROBUSTNESS_BROWSER_REPORT")
	if dir == "" {
		dir, _, _ = failingReport(t)
	}
	dir, err := filepath.Abs(dir)
	require.NoError(t, err)

	tests := []struct {
		page string
		// want: in the DOM after the page's scripts ran.
		want []string
	}{
		{IndexFile, []string{`id="verdicts"`, `class="illegal">illegal<`, `id="explanation" class="explanation"`, `<table id="involved">`,
			`<svg id="timeline"`, `class="fault"`, `href="history.html"`}},
		// porcupine's script draws the history into #canvas.
		{HTMLFile, []string{`<div id="canvas"><svg`, "jump-link", "fault"}},
	}
	for _, tc := range tests {
		t.Run(tc.page, func(t *testing.T) {
			url := "file://" + filepath.Join(dir, tc.page)
			dom, log := headless(t, bin, "--dump-dom", url)
			for _, w := range tc.want {
				require.Contains(t, dom, w)
			}
			require.Empty(t, scriptErrors(log), "the page ran without script errors")
			shot := filepath.Join(dir, strings.TrimSuffix(tc.page, ".html")+".png")
			headless(t, bin, "--screenshot="+shot, "--window-size=1200,1800", "--hide-scrollbars", url)
			fi, err := os.Stat(shot)
			require.NoError(t, err, "the screenshot is kept in the report")
			require.Greater(t, fi.Size(), int64(10<<10))
			t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
		})
	}
}
