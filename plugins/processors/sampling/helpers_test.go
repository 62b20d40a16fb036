package sampling

import (
	dto "github.com/prometheus/client_model/go"
)

func testCounter(s *Sampling) float64 {
	var m dto.Metric
	if err := s.unknown.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
