package virtiofsd

import (
	"reflect"
	"testing"
)

func TestArgs(t *testing.T) {
	got := Args(Config{Socket: "/run/v.sock", SharedDir: "/img", ReadOnly: true})
	want := []string{
		"--socket-path=/run/v.sock", "--shared-dir=/img", "--sandbox=chroot", "--cache=always",
		"--allow-mmap", "--inode-file-handles=never", "--log-level=error", "--readonly", "--modcaps=-mknod",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	rw := Args(Config{Socket: "s", SharedDir: "d", Coherent: true})
	if want := []string{"--socket-path=s", "--shared-dir=d", "--sandbox=chroot", "--cache=auto",
		"--allow-mmap", "--inode-file-handles=never", "--log-level=error", "--modcaps=-mknod"}; !reflect.DeepEqual(rw, want) {
		t.Fatalf("read-write share: %q", rw)
	}
}
