// Command flowline-bench-plugin serves benchplugin's Counter output, or its
// Tagger processor with the argument "processor".
package main

import (
	"os"

	"github.com/flowline/flowline/internal/benchplugin"
	"github.com/flowline/flowline/sdk"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "processor" {
		sdk.ServeProcessor(sdk.Plugin{Name: "tagger"}, func() sdk.Processor { return &benchplugin.Tagger{} })
		return
	}
	sdk.ServeOutput(sdk.Plugin{Name: "counter"}, func() sdk.Output { return &benchplugin.Counter{} })
}
