//go:build tools

// The programs scripts/k8s-peers.sh builds; importing their packages here keeps them,
// and everything they need, in go.mod and go.sum.
package tools

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
)
