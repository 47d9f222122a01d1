// Command etcd is the etcd server pinned for the local test cluster, built
// from the Go module proxy because distribution packages ship versions too
// old for current kube-apiservers.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
