// Command flowline-input-pcap is an example Flowline input plugin: it
// replays the NetFlow/IPFIX datagrams of a pcap file. Flowline runs it from
// an [[inputs.external]] table; see pcapin/sample.toml.
package main

import (
	"github.com/example/flowline-input-pcap/pcapin"
	"github.com/flowline/flowline/sdk"
)

func main() {
	sdk.ServeInput(pcapin.Plugin, pcapin.New)
}
