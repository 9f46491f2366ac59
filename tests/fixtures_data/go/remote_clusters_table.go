// Prints the table istioctl 1.27.9 `remote-clusters` prints, with the same text/tabwriter settings and
// format (istio@1.27.9 istioctl/pkg/proxyconfig/clusters.go writeMulticlusterStatus), for rows given as
// arguments "ID|SECRET|STATUS|ISTIOD". Used by the engine tests as the formatter's real output.
package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
)

func main() {
	w := new(tabwriter.Writer).Init(os.Stdout, 0, 8, 5, ' ', 0)
	_, _ = fmt.Fprintln(w, "NAME\tSECRET\tSTATUS\tISTIOD")
	for _, row := range os.Args[1:] {
		c := strings.Split(row, "|")
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c[0], c[1], c[2], c[3])
	}
	_ = w.Flush()
}
