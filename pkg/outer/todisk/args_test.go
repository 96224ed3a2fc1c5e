package todisk

import (
	"encoding/csv"
	"slices"
	"strings"
	"testing"
)

// The work directory is named after DISK: a "," or '"' in DISK must not end
// the mount's source or add mount options.
func TestConvertPodmanArgsQuotesTheWorkDirectory(t *testing.T) {
	for _, tc := range []struct{ dir, mount string }{
		{"/srv/.disk.vmdk.bcvk-1", "type=bind,source=/srv/.disk.vmdk.bcvk-1,destination=/bcvk/disks"},
		{"/srv/.a,ro=true.vmdk.bcvk-1", `type=bind,"source=/srv/.a,ro=true.vmdk.bcvk-1",destination=/bcvk/disks`},
		{`/srv/."x".vmdk.bcvk-1`, `type=bind,"source=/srv/.""x"".vmdk.bcvk-1",destination=/bcvk/disks`},
		{"/srv/.a=b.vmdk.bcvk-1", "type=bind,source=/srv/.a=b.vmdk.bcvk-1,destination=/bcvk/disks"},
	} {
		a := ConvertPodmanArgs(ConvertConfig{Name: "n", RunnerImage: "r:1", Dir: tc.dir, From: "disk.qcow2", To: "disk.vmdk", Format: FormatVMDK})
		i := slices.Index(a, "--mount")
		if i < 0 || a[i+1] != tc.mount {
			t.Fatalf("%q: args %q, want --mount %s", tc.dir, a, tc.mount)
		}
		rec, err := csv.NewReader(strings.NewReader(a[i+1])).ReadAll()
		if err != nil || len(rec) != 1 || rec[0][1] != "source="+tc.dir {
			t.Fatalf("%q: podman would read %q, %v", tc.dir, rec, err)
		}
	}
}
