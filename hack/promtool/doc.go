// Package promtool pins the Prometheus release whose promtool checks and
// unit-tests the chart's alerting rules. It has no code of its own:
// `go build github.com/prometheus/prometheus/cmd/promtool` runs inside this
// module so that the requirements below decide every version.
package promtool
