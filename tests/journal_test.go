package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// journalLine is the form of every line of the guest's journal on the host.
var journalLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (\S+ )?\S.*?: `)

// checkJournal checks the journal of the running VM name, booted with
// --journal journalFile: lines of its boot (the kernel's, systemd's,
// sshd's) and a line the test logs in the guest arrive on the host, in
// `logs --journal` and in the file, as plain lines with the guest's control
// characters escaped.
func checkJournal(t *testing.T, stateDir, name, journalFile string) {
	t.Helper()
	marker := fmt.Sprintf("bcvk-journal-marker-%d", time.Now().UnixNano())
	// systemd-cat keeps the ESC in the message: the host must escape it.
	r := runBcvk(t, stateDir, nil, 2*time.Minute, "ephemeral", "ssh", name, "--", "sh", "-c",
		fmt.Sprintf(`logger -t bcvk-test %s && printf '%s-esc \033[2J\n' | systemd-cat -t bcvk-test`, marker, marker))
	if r.code != 0 {
		t.Fatalf("logging in the guest: exit %d\n%s", r.code, r.stderr)
	}
	var logs string
	deadline := time.Now().Add(time.Minute)
	for {
		r := runBcvk(t, stateDir, nil, time.Minute, "ephemeral", "logs", "--journal", name)
		logs = r.stdout
		if r.code != 0 {
			t.Fatalf("logs --journal: exit %d\n%s", r.code, r.stderr)
		}
		if strings.Contains(logs, marker+"-esc") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker did not arrive in `logs --journal` within a minute; stderr:\n%s\nlast lines:\n%s", r.stderr, lastLines(logs, 20))
		}
		time.Sleep(time.Second)
	}
	b, err := os.ReadFile(journalFile)
	if err != nil {
		t.Fatal(err)
	}
	file := string(b)
	for what, s := range map[string]string{"logs --journal": logs, "--journal " + journalFile: file} {
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m) kernel: Linux version `),
			regexp.MustCompile(`(?m) systemd\[1\]: .*(Reached target|Started) `),
			regexp.MustCompile(`(?m) sshd(-session)?\[\d+\]: `),
			regexp.MustCompile(`(?m) bcvk-test\[\d+\]: ` + marker + `$`),
			regexp.MustCompile(`(?m) bcvk-test\[\d+\]: ` + marker + `-esc \\x1b\[2J$`),
		} {
			if !want.MatchString(s) {
				t.Errorf("%s: no line matches %s; last lines:\n%s", what, want, lastLines(s, 20))
			}
		}
		for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			if !journalLine.MatchString(l) || strings.ContainsFunc(l, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Errorf("%s: line %d is not a plain journal line: %q", what, i+1, l)
				break
			}
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// A --journal FILE that cannot be made is a usage error before anything
// starts.
func TestJournalBadFile(t *testing.T) {
	needPodman(t)
	dir := t.TempDir()
	name := "bcvk-test-journal-bad"
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(dir, "missing", "j.log"), "does not exist"},
		{dir, "is a directory"},
	} {
		r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "run-ssh", "--name", name, "--journal", tc.file, sampleImage(), "--", "true")
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("--journal %s: exit %d, stderr %q; want exit 2 and %q", tc.file, r.code, r.stderr, tc.want)
		}
		assertNothingLeft(t, name, sharedState)
	}
}
