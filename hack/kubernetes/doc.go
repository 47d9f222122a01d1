// Package kubernetes pins the Kubernetes control-plane programs that the
// local test cluster builds from the Go module proxy. It has no code of its
// own: `go build k8s.io/kubernetes/cmd/...` is run inside this module so that
// the requirements and replacements below decide every version.
package kubernetes
