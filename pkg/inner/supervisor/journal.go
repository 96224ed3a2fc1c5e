package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/journal"
	"github.com/bcvk/bcvk/pkg/inner/vsock"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// journalCredential tells the guest's journald (systemd 256 and later)
// where to forward every entry, in the Journal Export Format; older
// systemd ignores it.
const journalCredential = "journal.forward_to_socket"

// journalSocket is the credential's value: the host's vsock port.
func journalSocket(port uint32) string {
	return fmt.Sprintf("vsock:%d:%d", vsock.HostCID, port)
}

// serveJournal writes what the guest's journald forwards on l to the
// state directory's journal.log and the user's --journal file, until ctx
// ends.
func (s *supervisor) serveJournal(ctx context.Context, l net.Listener) {
	sink := journal.NewSink(journal.DefaultMaxBytes, logrus.StandardLogger())
	var files []*os.File
	if f, err := os.OpenFile(filepath.Join(s.o.StateDir, spec.JournalFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o644); err == nil {
		sink.Add(spec.JournalFile, f)
		files = append(files, f)
	} // else run by hand: no state directory
	if s.sp.Journal != "" {
		// The host made it (empty) and mounted it here.
		f, err := os.OpenFile(s.o.JournalMount, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0)
		if err != nil {
			s.ev.Warn("", fmt.Sprintf("the guest's journal cannot go to %s: %v", s.sp.Journal, err))
		} else {
			sink.Add(s.sp.Journal, f)
			files = append(files, f)
		}
	}
	srv := &journal.Server{Sink: sink, Log: logrus.StandardLogger()}
	go func() {
		if err := srv.Serve(ctx, l); err != nil {
			logrus.Debugf("the listener for the guest's journal ended: %v", err)
		}
		for _, f := range files {
			f.Close()
		}
		logrus.Debugf("the guest's journal: %d entries, %d malformed parts skipped, %d lines dropped past the bound",
			srv.Entries(), srv.Malformed(), sink.Dropped())
	}()
}

// noJournal says why the guest's journal does not come: a warning when
// the user asked for a file, else a note.
func (s *supervisor) noJournal(why string) {
	msg := "the guest's journal is not forwarded: " + why
	if s.sp.Journal != "" {
		logrus.Warn(msg)
		s.ev.Warn("", msg)
		return
	}
	logrus.Debug(msg)
	s.ev.Emit(events.PhaseInfo, msg)
}
