package obs

// This file owns Sample, which reads one figure out of a registry the way a
// test or a tool asks for it. Safe from any goroutine (Gather is).

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Sample returns the value of family name's first sample whose labels
// include labels (name, value pairs): a counter's or gauge's value, a
// histogram's sample count; -1 if there is none.
func Sample(g prometheus.Gatherer, name string, labels ...string) (float64, error) {
	fams, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("obs: gather: %w", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), nil
			case m.Gauge != nil:
				return m.Gauge.GetValue(), nil
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), nil
			}
		}
	}
	return -1, nil
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
