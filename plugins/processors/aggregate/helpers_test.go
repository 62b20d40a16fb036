package aggregate

import (
	"time"

	"github.com/flowline/flowline/core"
)

func configDuration(d time.Duration) core.Duration { return core.Duration(d) }
