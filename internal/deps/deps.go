package deps
import (
	_ "github.com/anishathalye/porcupine"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/api/v3/mvccpb"
	_ "github.com/stretchr/testify/require"
	_ "golang.org/x/sync/errgroup"
	_ "go.uber.org/zap"
	_ "golang.org/x/time/rate"
)
