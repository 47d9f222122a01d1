// Package helm pins the Helm client the chart's tests install with. It has no
// code of its own: `go build helm.sh/helm/v3/cmd/helm` runs inside this module.
package helm
