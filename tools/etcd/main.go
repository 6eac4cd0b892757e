// Command etcd is the upstream etcd server, built from the published
// go.etcd.io/etcd/server/v3 module. This mirrors upstream's server/main.go
// (Apache-2.0, The etcd Authors) of the version pinned in go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
