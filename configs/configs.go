// Package configs embeds Flowline's default configuration, so that
// `flowline run` works from any directory without a config file.
package configs

import _ "embed"

// Default is configs/flowline.toml.
//
//go:embed flowline.toml
var Default []byte

// DefaultName is the name errors in the default configuration refer to.
const DefaultName = "configs/flowline.toml (embedded default)"
