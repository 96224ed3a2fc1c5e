package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenDocCommand writes man pages and Markdown from the command tree, so
// the docs never disagree with the flags (`make man`).
func newGenDocCommand(st Streams) *cobra.Command {
	var manDir, mdDir string
	c := &cobra.Command{
		Use:    "generate-docs",
		Short:  "Write man pages and Markdown for every command",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if manDir == "" && mdDir == "" {
				return usageError{fmt.Errorf("give --man DIR and/or --markdown DIR")}
			}
			if manDir != "" {
				if err := os.MkdirAll(manDir, 0o755); err != nil {
					return err
				}
				hdr := &doc.GenManHeader{Title: "BCVK", Section: "1", Source: "bcvk", Manual: "bcvk manual"}
				if err := doc.GenManTree(root, hdr, manDir); err != nil {
					return err
				}
			}
			if mdDir != "" {
				if err := os.MkdirAll(mdDir, 0o755); err != nil {
					return err
				}
				if err := doc.GenMarkdownTree(root, mdDir); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&manDir, "man", "", "directory for man pages")
	c.Flags().StringVar(&mdDir, "markdown", "", "directory for Markdown pages")
	return c
}
