package supervisor

import "testing"

// journald's socket_address_parse reads "vsock:CID:PORT" (the form
// journald.conf(5) gives for ForwardToSocket=).
func TestJournalSocket(t *testing.T) {
	if got := journalSocket(8714); got != "vsock:2:8714" {
		t.Fatalf("got %q", got)
	}
}
