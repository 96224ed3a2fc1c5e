package cli

import (
	"fmt"

	"github.com/bcvk/bcvk/pkg/outer/hostcheck"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/spf13/cobra"
)

func newSystemCommand(g *globals, st Streams) *cobra.Command {
	c := &cobra.Command{Use: "system", Short: "Inspect the host bcvk runs on"}
	var asJSON bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Report what this host offers bcvk and what it lacks, with fixes",
		Long: `Check podman and its runtime, the runner image, ulimits, KVM, vsock, the
network device for rootless podman, free disk space and memory. Each problem
comes with a fix. The exit status is 1 when something stops bcvk from working.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pc, _ := podman.New() // a missing podman is one of the findings
			fs := hostcheck.Run(cmd.Context(), hostcheck.DefaultHost(pc, g.runnerImage))
			if asJSON {
				if err := writeJSON(st.Out, fs); err != nil {
					return err
				}
			} else {
				marks := map[string]string{hostcheck.OK: "✓", hostcheck.Info: "·", hostcheck.Warning: "!", hostcheck.Error: "✗"}
				for _, f := range fs {
					fmt.Fprintf(st.Out, "%s %-15s %s\n", marks[f.Level], f.Item, f.Detail)
					if f.Fix != "" {
						fmt.Fprintf(st.Out, "  %-15s fix: %s\n", "", f.Fix)
					}
				}
			}
			if hostcheck.Failed(fs) {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	check.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(check)
	return c
}
