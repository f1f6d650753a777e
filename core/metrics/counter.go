package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxLabels is the most labels a counterVec has.
const maxLabels = 4

// counterVec is a counter with labels, like prometheus.CounterVec, that
// keeps only the label values and a number per series, and makes the
// samples at scrape time. A CounterVec keeps a whole metric per series,
// its label pairs made when the series is first counted: about 700 bytes
// each. A daemon counts half a dozen series per database (its storage
// requests, its first upload, its generation) and keeps them as long as
// it runs, so with a thousand databases they were a quarter of its live
// heap, doubled by the garbage collector's headroom. Here a series costs
// its map entry, and its label values share the caller's strings.
type counterVec struct {
	desc   *prometheus.Desc
	labels int

	mu     sync.Mutex
	series map[[maxLabels]string]float64
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	if len(labels) > maxLabels {
		panic("metrics: counter " + name + " has more than maxLabels labels")
	}
	return &counterVec{desc: prometheus.NewDesc(name, help, labels, nil), labels: len(labels), series: map[[maxLabels]string]float64{}}
}

// add adds v to the series of the label values, given in the order of the
// labels.
func (c *counterVec) add(v float64, values ...string) {
	if len(values) != c.labels {
		panic("metrics: wrong number of label values for " + c.desc.String())
	}
	var k [maxLabels]string
	copy(k[:], values)
	c.mu.Lock()
	c.series[k] += v
	c.mu.Unlock()
}

// inc adds one to the series of the label values.
func (c *counterVec) inc(values ...string) { c.add(1, values...) }

func (c *counterVec) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *counterVec) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.series {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, v, k[:c.labels]...)
	}
}
