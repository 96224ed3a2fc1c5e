// Package consolelog reads serial console logs: escape codes removed, the
// last lines for error messages.
package consolelog

import (
	"io"
	"os"
	"strings"

	"github.com/bcvk/bcvk/pkg/tail"
)

// Clean removes every control sequence and control character but newline
// and tab (see Filter).
func Clean(s string) string { return string(NewFilter(false).Append(nil, []byte(s))) }

// RotatedPath is where the part of a console log before the current one is
// kept (bcvk-inner caps each part and keeps two).
func RotatedPath(path string) string { return path + ".1" }

// Tail returns the last n non-empty lines of the log at path (and of its
// rotated part when the current one is short), cleaned.
func Tail(path string, n int) []string {
	const window = 64 << 10
	b := readEnd(path, window)
	if len(b) < window {
		b = append(readEnd(RotatedPath(path), window-int64(len(b))), b...)
	}
	var lines []string
	for _, l := range strings.Split(Clean(string(b)), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return tail.Last(lines, n)
}

// readEnd returns at most the last max bytes of the file at path.
func readEnd(path string, max int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return b
}
