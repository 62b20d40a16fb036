// Command flowline-bench-plugin serves benchplugin's Counter output, or its
// Tagger processor with the argument "processor", or an output that dies on
// every write with the argument "crash" (for the tests of restarts).
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
	if len(os.Args) > 1 && os.Args[1] == "crash" {
		sdk.ServeOutput(sdk.Plugin{Name: "crasher"}, func() sdk.Output { return &benchplugin.Crasher{} })
		return
	}
	sdk.ServeOutput(sdk.Plugin{Name: "counter"}, func() sdk.Output { return &benchplugin.Counter{} })
}
