package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/spec"
)

// journalPath checks --journal FILE before anything starts: its directory
// must exist and FILE must not be a directory. It returns the absolute
// path, or "" without the flag.
func journalPath(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("--journal %s: %w", file, err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("--journal %s: the directory %s does not exist", file, filepath.Dir(abs))
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && fi.IsDir():
		return "", fmt.Errorf("--journal %s: is a directory; give a file name", file)
	case err == nil && !fi.Mode().IsRegular():
		return "", fmt.Errorf("--journal %s: is not a regular file", file)
	case err != nil && !os.IsNotExist(err):
		return "", fmt.Errorf("--journal %s: %w", file, err)
	}
	return abs, nil
}

// noJournalHint says why a VM's journal is empty, or "" when it is not.
func noJournalHint(stateDir string) string {
	if fi, err := os.Stat(filepath.Join(stateDir, spec.JournalFile)); err == nil && fi.Size() > 0 {
		return ""
	}
	if sp, err := spec.Read(filepath.Join(stateDir, spec.SpecFile)); err == nil && sp.Journal == "" {
		return "bcvk: no journal: this VM was started without --journal FILE; the guest's journald forwards its journal only when asked, because it waits for the host while it does"
	}
	if b, err := os.ReadFile(filepath.Join(stateDir, spec.SSHTransportFile)); err == nil && strings.TrimSpace(string(b)) == spec.TransportTCP {
		return "bcvk: no journal: it comes over vsock, and this VM has none (its SSH goes over TCP; see `bcvk ephemeral ps`)"
	}
	return fmt.Sprintf("bcvk: no journal arrived (yet): the guest's systemd forwards its journal from version %d on", spec.MinSystemdForJournal)
}
