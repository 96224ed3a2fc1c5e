package initramfs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// buildIn builds an initramfs from the modules dir modDir of the image
// mounted at root; .xz and .zst modules decompress to plain.
func buildIn(t *testing.T, root, modDir string, plain []byte) ([]byte, error) {
	t.Helper()
	initBin := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(initBin, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err := Build(&buf, Options{InitBinary: initBin, ImageMount: root, ModulesDir: modDir, RootTag: "rootfs",
		Decompress: func(argv []string, in *os.File, out io.Writer) error {
			_, err := out.Write(plain)
			return err
		}})
	return buf.Bytes(), err
}
