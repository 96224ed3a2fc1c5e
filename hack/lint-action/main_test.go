package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepositoryAction(t *testing.T) {
	text, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	if _, probs := check(text); len(probs) > 0 {
		t.Fatalf("action.yml: %s", strings.Join(probs, "; "))
	}
	if probs := checkDocs("../.."); len(probs) > 0 {
		t.Fatalf("docs/ci.md: %s", strings.Join(probs, "; "))
	}
}

const good = `name: x
description: y
inputs:
  image: {description: a}
  run: {description: a}
  accel: {description: a}
  runner-archive: {description: a}
  runner-image: {description: a}
  setup-go: {description: a}
runs:
  using: composite
  steps:
    - uses: actions/setup-go@v5
      if: inputs.setup-go == 'true'
    - shell: bash
      env:
        IMAGE: ${{ inputs.image }}
      run: echo "$IMAGE"
`

func TestCheck(t *testing.T) {
	if _, probs := check([]byte(good)); len(probs) > 0 {
		t.Fatalf("good action: %v", probs)
	}
	for _, c := range []struct{ from, to, want string }{
		{"using: composite", "using: node20", "want composite"},
		{"    - shell: bash\n", "    - name: s\n", "without shell"},
		{`run: echo "$IMAGE"`, `run: echo "${{ inputs.image }}"`, "pass it through env"},
		{"IMAGE: ${{ inputs.image }}", "IMAGE: ${{ inputs.imag }}", "inputs.imag, which is not declared"},
		{"  runner-archive: {description: a}\n", "", `"runner-archive" is missing`},
		{"  run: {description: a}", "  run: {description: ''}", "no description"},
		{"using: composite", "using: composite\n  typo: 1", "not found in type"},
	} {
		text := strings.Replace(good, c.from, c.to, 1)
		_, probs := check([]byte(text))
		if !strings.Contains(strings.Join(probs, "\n"), c.want) {
			t.Errorf("%q -> %q: problems %q, want one with %q", c.from, c.to, probs, c.want)
		}
	}
}

func TestCheckDocs(t *testing.T) {
	dir := t.TempDir()
	wf := filepath.Join(dir, ".github", "workflows")
	if err := os.MkdirAll(wf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := "name: e\non: workflow_dispatch\n"
	if err := os.WriteFile(filepath.Join(wf, "example-a.yml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := "text\n```yaml\n# .github/workflows/example-a.yml\n" + body + "```\n"
	if err := os.WriteFile(filepath.Join(dir, "docs", "ci.md"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if probs := checkDocs(dir); len(probs) > 0 {
		t.Fatalf("in sync: %v", probs)
	}
	if err := os.WriteFile(filepath.Join(wf, "example-a.yml"), []byte(body+"# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if probs := checkDocs(dir); len(probs) != 1 {
		t.Fatalf("out of sync: %v, want one problem", probs)
	}
}
