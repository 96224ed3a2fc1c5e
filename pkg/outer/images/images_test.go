package images

import (
	"testing"
)

func TestParse(t *testing.T) {
	out := []byte(`[
 {"Id":"sha256:aaa","Names":["localhost/a:1","quay.io/x/a:2"],"Created":200,"Size":300000000,"Labels":{"containers.bootc":"1"}},
 {"Id":"bbb","Names":[],"Created":100,"Size":11},
 {"Id":"ccc","Names":["host:5000/repo"],"Created":300,"Size":1}
]`)
	imgs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, im := range imgs {
		got = append(got, im.Repository+"|"+im.Tag+"|"+im.ID)
	}
	want := []string{"host:5000/repo|latest|ccc", "localhost/a|1|aaa", "quay.io/x/a|2|aaa", "<none>|<none>|bbb"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if _, err := parse([]byte("not json")); err == nil {
		t.Fatal("want an error for bad JSON")
	}
}

func TestSplitName(t *testing.T) {
	for in, want := range map[string][2]string{
		"localhost:5000/a/b:tag": {"localhost:5000/a/b", "tag"},
		"localhost:5000/a/b":     {"localhost:5000/a/b", "latest"},
		"a@sha256:abc":           {"a", "<none>"},
	} {
		r, tag := splitName(in)
		if r != want[0] || tag != want[1] {
			t.Errorf("%s: %s %s", in, r, tag)
		}
	}
}
