// Command lint-action checks action.yml, which actionlint does not lint by
// itself (it lints workflows), and writes two workflows for actionlint to
// check in its place:
//
//   - uses.yml calls the action with `uses: ./` and every input, so actionlint
//     checks the inputs against action.yml's metadata;
//   - steps.yml holds the action's own steps as a workflow job (the action's
//     inputs become workflow_dispatch inputs of the same names), so
//     actionlint checks their expressions and, with shellcheck on PATH,
//     their shell scripts.
//
// It also checks that docs/ci.md quotes each example workflow under
// .github/workflows/ exactly.
//
// Usage: lint-action [-repo DIR] -out DIR
// (DIR, inside the repository, gets .github/workflows/{uses,steps}.yml; run
// actionlint on them there: it takes the repository as the project, so
// `uses: ./` is the repository's action.yml).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

type input struct {
	Description string `yaml:"description"`
	Required    *bool  `yaml:"required"`
	Default     string `yaml:"default"`
}

type step struct {
	Name  string            `yaml:"name,omitempty"`
	ID    string            `yaml:"id,omitempty"`
	If    string            `yaml:"if,omitempty"`
	Uses  string            `yaml:"uses,omitempty"`
	With  map[string]string `yaml:"with,omitempty"`
	Shell string            `yaml:"shell,omitempty"`
	Env   map[string]string `yaml:"env,omitempty"`
	Run   string            `yaml:"run,omitempty"`
}

type action struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Author      string            `yaml:"author"`
	Branding    map[string]string `yaml:"branding"`
	Inputs      map[string]input  `yaml:"inputs"`
	Outputs     map[string]output `yaml:"outputs"`
	Runs        struct {
		Using string `yaml:"using"`
		Steps []step `yaml:"steps"`
	} `yaml:"runs"`
}

type output struct {
	Description string `yaml:"description"`
	Value       string `yaml:"value"`
}

// The inputs the action promises (docs/ci.md, README).
var wantInputs = []string{"image", "run", "accel", "runner-archive", "runner-image", "setup-go"}

var inputRef = regexp.MustCompile(`inputs\.([A-Za-z0-9_-]+)`)

// check returns every problem found in action.yml's text.
func check(text []byte) (*action, []string) {
	var a action
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil {
		return nil, []string{"action.yml does not parse as an action: " + err.Error()}
	}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if a.Name == "" || a.Description == "" {
		bad("name and description are required")
	}
	if a.Runs.Using != "composite" {
		bad("runs.using is %q, want composite", a.Runs.Using)
	}
	if len(a.Runs.Steps) == 0 {
		bad("runs.steps is empty")
	}
	for _, name := range wantInputs {
		if _, ok := a.Inputs[name]; !ok {
			bad("input %q is missing", name)
		}
	}
	for name, in := range a.Inputs {
		if strings.TrimSpace(in.Description) == "" {
			bad("input %q has no description", name)
		}
	}
	refs := func(where, s string) {
		for _, m := range inputRef.FindAllStringSubmatch(s, -1) {
			if _, ok := a.Inputs[m[1]]; !ok {
				bad("%s refers to inputs.%s, which is not declared", where, m[1])
			}
		}
	}
	for i, s := range a.Runs.Steps {
		where := fmt.Sprintf("step %d (%s)", i+1, s.Name)
		switch {
		case s.Run != "" && s.Uses != "":
			bad("%s has both run and uses", where)
		case s.Run != "":
			if s.Shell == "" {
				bad("%s runs a script without shell: (a composite step needs one)", where)
			}
			// Values go through env:, never into the script's text.
			if strings.Contains(s.Run, "${{") {
				bad("%s puts a ${{ }} expression into its script; pass it through env:", where)
			}
		case s.Uses != "":
			if s.Shell != "" {
				bad("%s has shell: with uses:", where)
			}
		default:
			bad("%s has neither run nor uses", where)
		}
		refs(where, s.If)
		refs(where, s.Name)
		for _, v := range s.With {
			refs(where, v)
		}
		for _, v := range s.Env {
			refs(where, v)
		}
	}
	for name, o := range a.Outputs {
		if o.Value == "" {
			bad("output %q has no value", name)
		}
	}
	return &a, probs
}

type dispatchInput struct {
	Description string `yaml:"description"`
	Required    bool   `yaml:"required"`
	Default     string `yaml:"default"`
	Type        string `yaml:"type"`
}

func sortedInputs(a *action) []string {
	var names []string
	for n := range a.Inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// usesWorkflow calls the action with every input.
func usesWorkflow(a *action) map[string]any {
	with := map[string]string{}
	for _, n := range sortedInputs(a) {
		with[n] = "x"
	}
	with["setup-go"] = "true"
	with["accel"] = "auto"
	return map[string]any{
		"name": "lint-action: uses ./",
		"on":   map[string]any{"workflow_dispatch": nil},
		"jobs": map[string]any{"uses": map[string]any{
			"runs-on": "ubuntu-24.04",
			"steps": []step{
				{Uses: "actions/checkout@v4"},
				{ID: "bcvk", Uses: "./", With: with},
				{Run: "echo \"$RUNNER\"", Env: map[string]string{"RUNNER": "${{ steps.bcvk.outputs.runner-image }}"}},
			},
		}},
	}
}

// stepsWorkflow holds the action's steps as a job: inputs.X is valid in a
// workflow_dispatch workflow too, so actionlint checks the expressions
// and scripts as they are.
func stepsWorkflow(a *action) map[string]any {
	inputs := map[string]dispatchInput{}
	for _, n := range sortedInputs(a) {
		in := a.Inputs[n]
		inputs[n] = dispatchInput{Description: in.Description, Default: in.Default, Type: "string"}
	}
	return map[string]any{
		"name": "lint-action: the action's steps",
		"on":   map[string]any{"workflow_dispatch": map[string]any{"inputs": inputs}},
		"jobs": map[string]any{"steps": map[string]any{
			"runs-on": "ubuntu-24.04",
			"steps":   a.Runs.Steps,
		}},
	}
}

// checkDocs returns a problem for each example workflow that docs/ci.md
// does not quote exactly (a ```yaml block that follows a line naming the
// file).
func checkDocs(repo string) []string {
	doc, err := os.ReadFile(filepath.Join(repo, "docs", "ci.md"))
	if err != nil {
		return []string{err.Error()}
	}
	files, _ := filepath.Glob(filepath.Join(repo, ".github", "workflows", "example-*.yml"))
	if len(files) == 0 {
		return []string{"no .github/workflows/example-*.yml"}
	}
	var probs []string
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			probs = append(probs, err.Error())
			continue
		}
		rel, _ := filepath.Rel(repo, f)
		block := "```yaml\n# " + rel + "\n" + string(body) + "```\n"
		if !bytes.Contains(doc, []byte(block)) {
			probs = append(probs, fmt.Sprintf("docs/ci.md does not quote %s as it is: it needs a ```yaml block that starts with the line \"# %s\" followed by the file", rel, rel))
		}
	}
	return probs
}

func writeYAML(path string, v any) error {
	var b bytes.Buffer
	b.WriteString("# Generated by hack/lint-action for actionlint; not a real workflow.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func main() {
	repo := flag.String("repo", ".", "the repository")
	out := flag.String("out", "", "directory to write the generated workflows into")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "lint-action: -out DIR is required")
		os.Exit(2)
	}
	text, err := os.ReadFile(filepath.Join(*repo, "action.yml"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "lint-action:", err)
		os.Exit(1)
	}
	a, probs := check(text)
	probs = append(probs, checkDocs(*repo)...)
	if a != nil {
		err := writeYAML(filepath.Join(*out, ".github", "workflows", "uses.yml"), usesWorkflow(a))
		if err == nil {
			err = writeYAML(filepath.Join(*out, ".github", "workflows", "steps.yml"), stepsWorkflow(a))
		}
		if err != nil {
			probs = append(probs, err.Error())
		}
	}
	for _, p := range probs {
		fmt.Fprintln(os.Stderr, "lint-action:", p)
	}
	if len(probs) > 0 {
		os.Exit(1)
	}
}
