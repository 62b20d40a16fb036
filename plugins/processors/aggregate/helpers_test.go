package aggregate

import (
	"time"

	"github.com/flowline/flowline/core/config"
)

func configDuration(d time.Duration) config.Duration { return config.Duration(d) }
