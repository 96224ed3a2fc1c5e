package diskimage

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func qcow2(backing uint64, size uint64) []byte {
	b := make([]byte, 512)
	copy(b, qcow2Magic)
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint64(b[8:], backing)
	binary.BigEndian.PutUint64(b[24:], size)
	return b
}

func TestRead(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		want Header
		err  bool
	}{
		{"empty file", nil, Header{Format: Raw}, false},
		{"raw zeros", make([]byte, 4096), Header{Format: Raw}, false},
		{"qcow2", qcow2(0, 10<<30), Header{Format: QCOW2, VirtualSize: 10 << 30}, false},
		{"qcow2 with backing", qcow2(512, 1<<30), Header{Format: QCOW2, VirtualSize: 1 << 30, Backed: true}, false},
		{"truncated qcow2", []byte(qcow2Magic + "\x00\x00"), Header{}, true},
	} {
		got, err := Read(bytes.NewReader(c.data))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v (error %v)", c.name, got, err, c.want, c.err)
		}
	}
}
