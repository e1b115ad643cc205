package host

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// withoutCollectors is a prometheus.Registerer that silently skips the
// collectors whose metric names start with prefix.
type withoutCollectors struct {
	prometheus.Registerer
	prefix string
}

func (w withoutCollectors) Register(c prometheus.Collector) error {
	if describes(c, w.prefix) {
		return nil
	}
	return w.Registerer.Register(c)
}

func (w withoutCollectors) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := w.Register(c); err != nil {
			panic(err)
		}
	}
}

// describes reports whether c describes a metric whose name starts with
// prefix.
func describes(c prometheus.Collector, prefix string) bool {
	ch := make(chan *prometheus.Desc)
	go func() { // ends when Describe returns: the loop below drains ch
		c.Describe(ch)
		close(ch)
	}()
	found := false
	for d := range ch {
		found = found || strings.Contains(d.String(), `fqName: "`+prefix)
	}
	return found
}
