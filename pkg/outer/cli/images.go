package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/bcvk/bcvk/pkg/outer/images"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/units"
	"github.com/spf13/cobra"
)

func newImagesCommand(g *globals, st Streams) *cobra.Command {
	c := &cobra.Command{Use: "images", Short: "Work with bootc images"}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List local bootc images (label containers.bootc=1)",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pc, err := podman.New()
			if err != nil {
				return err
			}
			imgs, err := images.List(cmd.Context(), pc)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(st.Out, imgs)
			}
			tw := tabwriter.NewWriter(st.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
			for _, im := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, shortID(im.ID), ago(im.Created), units.HumanSize(im.Size))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(list)
	return c
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
