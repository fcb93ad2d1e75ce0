package kafkasink

import "github.com/prometheus/client_golang/prometheus"

// descs are the sinks' metrics, each labelled by sink ID.
type descs struct {
	lag, published, errors, lagging, failing *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"sink"}, nil)
	}
	return descs{
		lag:       d("featurelog_sink_lag_seconds", "How long ago the oldest record a sink has not yet had acknowledged was logged; 0 when caught up."),
		published: d("featurelog_sink_records_published_total", "Records a sink's broker acknowledged (a record sent again after a failure counts again)."),
		errors:    d("featurelog_sink_errors_total", "Failed attempts of a sink: batches and restarts."),
		lagging:   d("featurelog_sink_lagging", "1 while a sink's lag exceeds its max_lag, else 0."),
		failing:   d("featurelog_sink_failing", "1 while a sink's last attempt failed (it backs off and restarts from its durable cursor), else 0."),
	}
}

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.descs.lag
	ch <- m.descs.published
	ch <- m.descs.errors
	ch <- m.descs.lagging
	ch <- m.descs.failing
}

// Collect implements prometheus.Collector.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	d := &m.descs
	for _, s := range m.Status() {
		ch <- prometheus.MustNewConstMetric(d.lag, prometheus.GaugeValue, s.Lag.Seconds(), s.ID)
		ch <- prometheus.MustNewConstMetric(d.published, prometheus.CounterValue, float64(s.Published), s.ID)
		ch <- prometheus.MustNewConstMetric(d.errors, prometheus.CounterValue, float64(s.Errors), s.ID)
		ch <- prometheus.MustNewConstMetric(d.lagging, prometheus.GaugeValue, b2f(s.MaxLag > 0 && s.Lag > s.MaxLag), s.ID)
		ch <- prometheus.MustNewConstMetric(d.failing, prometheus.GaugeValue, b2f(s.State == StateFailing), s.ID)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
