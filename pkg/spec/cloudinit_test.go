package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// seedDir makes a directory with the files given (name: content; a
// content beginning with "->" makes a symlink to the rest).
func seedDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		var err error
		switch {
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), p)
		case content == "DIR":
			err = os.Mkdir(p, 0o755)
		case content == "FIFO":
			err = syscall.Mkfifo(p, 0o644)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadCloudInitDir(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "shared-user-data")
	if err := os.WriteFile(outside, []byte("#cloud-config\nusers: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    CloudInit
		ignored []string
	}{
		{"all three", map[string]string{"user-data": "#cloud-config\n", "meta-data": "instance-id: a\n", "network-config": "version: 2\n"},
			CloudInit{UserData: []byte("#cloud-config\n"), MetaData: []byte("instance-id: a\n"), NetworkConfig: []byte("version: 2\n")}, nil},
		{"user-data only", map[string]string{"user-data": "#!/bin/sh\necho hi\n"},
			CloudInit{UserData: []byte("#!/bin/sh\necho hi\n")}, nil},
		{"empty meta-data", map[string]string{"user-data": "x", "meta-data": ""},
			CloudInit{UserData: []byte("x"), MetaData: []byte{}}, nil},
		{"other files ignored", map[string]string{"user-data": "x", "vendor-data": "v", "README": "r", "sub": "DIR"},
			CloudInit{UserData: []byte("x")}, []string{"README", "sub", "vendor-data"}},
		{"symlink followed", map[string]string{"user-data": "->" + outside},
			CloudInit{UserData: []byte("#cloud-config\nusers: []\n")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ignored, err := ReadCloudInitDir(seedDir(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) || !reflect.DeepEqual(ignored, tc.ignored) {
				t.Fatalf("got %+v %q, want %+v %q", *got, ignored, tc.want, tc.ignored)
			}
		})
	}
}

func TestReadCloudInitDirRefuses(t *testing.T) {
	big := strings.Repeat("a", MaxCloudInitSeed/2+1)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no user-data", map[string]string{"meta-data": "instance-id: a\n"}, "has no user-data file"},
		{"user-data a directory", map[string]string{"user-data": "DIR"}, "user-data is not a regular file"},
		{"meta-data a FIFO", map[string]string{"user-data": "x", "meta-data": "FIFO"}, "meta-data is not a regular file"},
		{"dangling symlink", map[string]string{"user-data": "->/nonexistent/user-data"}, "user-data is a symlink to nothing"},
		{"too large together", map[string]string{"user-data": big, "meta-data": big}, "meta-data is too large: the seed's files may hold at most 1048576 bytes (1 MiB) together"},
		{"too large alone", map[string]string{"user-data": big + big}, "user-data is too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadCloudInitDir(seedDir(t, tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadCloudInitDir(f); err == nil || !strings.Contains(err.Error(), f+" is not a directory") {
			t.Fatal(err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, _, err := ReadCloudInitDir("/nonexistent/seed"); err == nil || !strings.Contains(err.Error(), "/nonexistent/seed does not exist") {
			t.Fatal(err)
		}
	})
}

func TestValidateCloudInit(t *testing.T) {
	sp := New()
	sp.CloudInit = &CloudInit{UserData: make([]byte, MaxCloudInitSeed+1)}
	if err := sp.Validate(); err == nil || !strings.Contains(err.Error(), "at most 1048576") {
		t.Fatalf("an oversized seed: %v", err)
	}
	sp.CloudInit = &CloudInit{UserData: []byte("x")}
	sp.Warm = WarmRestore
	if err := sp.Validate(); err == nil || !strings.Contains(err.Error(), "a warm start cannot have a cloud-init seed") {
		t.Fatalf("a warm start with a seed: %v", err)
	}
	sp.Warm = ""
	if err := sp.Validate(); err != nil {
		t.Fatal(err)
	}
	sp.AttachedDisks = []AttachedDisk{{Host: "/tmp/seed.img", Format: FormatRaw, Serial: CloudInitSerial}}
	if err := sp.Validate(); err == nil || !strings.Contains(err.Error(), `disk name "cidata" is used twice`) {
		t.Fatalf("a disk file named cidata beside the seed: %v", err)
	}
	sp.AttachedDisks = nil
	// The seed travels in the spec file.
	path := filepath.Join(t.TempDir(), "spec.json")
	sp.CloudInit.MetaData = []byte("instance-id: \x00binary\n")
	if err := sp.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil || !reflect.DeepEqual(got.CloudInit, sp.CloudInit) {
		t.Fatalf("read back %+v, %v", got.CloudInit, err)
	}
}
