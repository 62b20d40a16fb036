// Package sdk is what an external Flowline plugin is built with: a program
// in its own repository that Flowline starts and talks to over gRPC
// (hashicorp/go-plugin), configured from Flowline's TOML like any plugin:
//
//	[[outputs.external]]
//	  alias   = "webhook"
//	  command = "/usr/local/lib/flowline/flowline-output-webhook"
//	  env     = { TOKEN = "${WEBHOOK_TOKEN}" }
//	  [outputs.external.config]      # decoded into the plugin's struct
//	    url = "https://example.net/flows"
//
// A plugin implements the same small interfaces as a plugin compiled into
// Flowline (Output: Connect, Write, Close; Processor: Process, Flush; Input:
// Start, Stop; optionally Init, Validate and Tick) and calls one function in
// main:
//
//	func main() {
//		sdk.ServeOutput(sdk.Plugin{Name: "webhook", Sample: sample}, func() sdk.Output { return &Webhook{} })
//	}
//
// The SDK hides gRPC, go-plugin and the batch encoding. The value the
// factory returns is also the plugin's configuration: the `config` table is
// decoded into it strictly (an unknown key is an error that Flowline reports
// with the file and line of that key), then Validate and Init run. Because
// the types are Flowline's own (sdk.Output is core.Output), the same code
// can be compiled into Flowline in process by registering the factory.
//
// Life cycle: Flowline starts the program, checks the protocol version,
// calls Init with the configuration, then Connect (outputs) or Start
// (inputs), then batches one at a time, then Flush (processors) or Close
// (outputs) at shutdown. The process is killed when Flowline exits, even by
// SIGKILL.
//
// Delivery: a Write that returns nil acknowledges the batch; Flowline
// counts it written. If the process dies before that, Flowline restarts it
// and sends the same batch again with the same Batch.ID (ids grow across
// restarts of Flowline too), so an output that remembers the last ID it
// committed writes every batch exactly once. An error marked
// sdk.Permanent is not retried: the batch is dropped and counted; other
// errors are retried with backoff, up to the table's max_retries.
//
// Testing: Harness runs a plugin in memory, through the same configuration
// decoding and batch encoding as a real run, with no process; see
// NewHarness.
package sdk

import (
	"github.com/flowline/flowline/core"
	"github.com/flowline/flowline/core/registry"
	"github.com/flowline/flowline/plugins/common/pmacct"
)

// Version is the SDK's version, reported to Flowline at the handshake.
const Version = "1.0.0"

// The types a plugin works with; they are Flowline's own.
type (
	Record    = core.Record
	Packet    = core.Packet
	Batch     = core.Batch
	Extension = core.Extension
	Field     = core.Field
	Env       = core.Env
	Emit      = core.Emit
	Duration  = core.Duration
	Size      = core.Size

	Output      = core.Output
	Processor   = core.Processor
	Input       = core.Input
	Initializer = core.Initializer
	Validator   = core.Validator
	Ticker      = core.Ticker
)

// The Record fields, for Record.Present (see core/record.go).
const (
	FieldSrcAddr      = core.FieldSrcAddr
	FieldDstAddr      = core.FieldDstAddr
	FieldNextHop      = core.FieldNextHop
	FieldSrcPort      = core.FieldSrcPort
	FieldDstPort      = core.FieldDstPort
	FieldProto        = core.FieldProto
	FieldTCPFlags     = core.FieldTCPFlags
	FieldTOS          = core.FieldTOS
	FieldSrcMask      = core.FieldSrcMask
	FieldDstMask      = core.FieldDstMask
	FieldSrcAS        = core.FieldSrcAS
	FieldDstAS        = core.FieldDstAS
	FieldInIface      = core.FieldInIface
	FieldOutIface     = core.FieldOutIface
	FieldPackets      = core.FieldPackets
	FieldBytes        = core.FieldBytes
	FieldFlows        = core.FieldFlows
	FieldSamplingRate = core.FieldSamplingRate
	FieldSamplerID    = core.FieldSamplerID
	FieldStart        = core.FieldStart
	FieldEnd          = core.FieldEnd
	FieldSrcMAC       = core.FieldSrcMAC
	FieldDstMAC       = core.FieldDstMAC
	FieldVLAN         = core.FieldVLAN
	FieldDirection    = core.FieldDirection
	FieldStamps       = core.FieldStamps
	FieldExporter     = core.FieldExporter
	FieldSrcNet       = core.FieldSrcNet
	FieldDstNet       = core.FieldDstNet
	FieldTag          = core.FieldTag
	FieldTag2         = core.FieldTag2
)

// Record flags.
const (
	// FlagOptions marks exporter metadata (an options data record), not a
	// flow: outputs usually skip it.
	FlagOptions = core.FlagOptions
	// FlagRenormalized marks counters already multiplied by the sampling rate.
	FlagRenormalized = core.FlagRenormalized
)

// Flags are a record's processing flags.
type Flags = core.Flags

// Permanent marks an error that retrying cannot fix: Flowline drops the
// batch (counted) instead of retrying it.
func Permanent(err error) error { return core.Permanent(err) }

// Plugin describes the plugin to Flowline.
type Plugin struct {
	// Name is the plugin's own name ("jsonl"), shown in Flowline's log.
	Name string
	// Sample is its config table with every key documented (`##` prose,
	// `#` a commented default), printed by `flowline config --plugin PATH`.
	Sample string
}

// JSONEncoder writes records as pmacct's JSON lines, with the keys and
// values of outputs.print (and of pmacct's print and amqp plugins). Set Loc
// for the zone of the stamps (nil: local time, pmacct's default).
type JSONEncoder = pmacct.Encoder

// RegisterOutput compiles an output plugin into Flowline in process: call it
// from an init() in a package that the flowline binary imports (as
// plugins/all does), and the plugin is [[outputs.NAME]] with no process.
func RegisterOutput(p Plugin, factory func() Output) {
	registry.Register(registry.Outputs, p.Name, p.Sample, func() any { return factory() })
}

// RegisterProcessor compiles a processor plugin into Flowline in process.
func RegisterProcessor(p Plugin, factory func() Processor) {
	registry.Register(registry.Processors, p.Name, p.Sample, func() any { return factory() })
}

// RegisterInput compiles an input plugin into Flowline in process.
func RegisterInput(p Plugin, factory func() Input) {
	registry.Register(registry.Inputs, p.Name, p.Sample, func() any { return factory() })
}

// NewBatch returns an empty record batch from Flowline's pool, for inputs
// and processors that build batches of records: emit hands it on (and with
// it its ownership).
func NewBatch() *Batch { return core.NewBatch() }

// NewPacketBatch returns an empty packet batch from Flowline's pool, with an
// arena for the datagrams' bytes (Batch.Arena), for inputs that emit
// datagrams.
func NewPacketBatch() *Batch { return core.NewPacketBatch() }
