// Package all imports every built-in plugin, so that the default binary
// registers them all.
package all

import (
	_ "github.com/flowline/flowline/plugins/inputs/amqp"
	_ "github.com/flowline/flowline/plugins/inputs/external"
	_ "github.com/flowline/flowline/plugins/inputs/netflow"
	_ "github.com/flowline/flowline/plugins/inputs/replica"
	_ "github.com/flowline/flowline/plugins/outputs/amqp"
	_ "github.com/flowline/flowline/plugins/outputs/duckdb"
	_ "github.com/flowline/flowline/plugins/outputs/external"
	_ "github.com/flowline/flowline/plugins/outputs/influxdb"
	_ "github.com/flowline/flowline/plugins/outputs/mysql"
	_ "github.com/flowline/flowline/plugins/outputs/print"
	_ "github.com/flowline/flowline/plugins/outputs/tee"
	_ "github.com/flowline/flowline/plugins/processors/aggregate"
	_ "github.com/flowline/flowline/plugins/processors/external"
	_ "github.com/flowline/flowline/plugins/processors/sampling"
	_ "github.com/flowline/flowline/plugins/processors/templates"
)
