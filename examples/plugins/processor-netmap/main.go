// Command flowline-processor-netmap is an example Flowline processor
// plugin: it tags flows by the prefixes of a CSV file. Flowline runs it from
// a [[processors.external]] table; see netmap/sample.toml.
package main

import (
	"github.com/example/flowline-processor-netmap/netmap"
	"github.com/flowline/flowline/sdk"
)

func main() {
	sdk.ServeProcessor(netmap.Plugin, netmap.New)
}
