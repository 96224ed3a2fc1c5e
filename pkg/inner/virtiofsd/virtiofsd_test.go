package virtiofsd

import (
	"reflect"
	"testing"
)

func TestArgs(t *testing.T) {
	got := Args(Config{Socket: "/run/v.sock", SharedDir: "/img", ReadOnly: true})
	want := []string{
		"--socket-path=/run/v.sock", "--shared-dir=/img", "--sandbox=none", "--cache=always",
		"--allow-mmap", "--inode-file-handles=never", "--log-level=error", "--readonly", "--modcaps=-mknod",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if rw := Args(Config{Socket: "s", SharedDir: "d"}); len(rw) != 7 {
		t.Fatalf("read-write share: %q", rw)
	}
}
