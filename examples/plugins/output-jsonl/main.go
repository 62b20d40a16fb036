// Command flowline-output-jsonl is an example Flowline output plugin: it
// appends records as pmacct JSON lines to a file, exactly once. Flowline runs
// it from an [[outputs.external]] table; see jsonl/sample.toml.
package main

import (
	"github.com/example/flowline-output-jsonl/jsonl"
	"github.com/flowline/flowline/sdk"
)

func main() {
	sdk.ServeOutput(jsonl.Plugin, jsonl.New)
}
