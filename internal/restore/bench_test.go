package restore

import (
	"context"
	"os"
	"testing"

	"github.com/drym-backup/drym/internal/crypt"
)

// BenchmarkTestRestoreObject measures the test-restore pipeline on a real
// object: DRYM_BENCH_OBJECT=<object> DRYM_BENCH_KEY=<secret key file>
// go test -run X -bench TestRestoreObject -benchtime 1x ./internal/restore
func BenchmarkTestRestoreObject(b *testing.B) {
	obj, keyFile := os.Getenv("DRYM_BENCH_OBJECT"), os.Getenv("DRYM_BENCH_KEY")
	if obj == "" || keyFile == "" {
		b.Skip("set DRYM_BENCH_OBJECT and DRYM_BENCH_KEY")
	}
	keys, err := crypt.ReadKeyFile(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		f, err := os.Open(obj)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		s := Open(ctx, f, keys, nil)
		rep, rerr := Verify(ctx, s, nil)
		res, err := s.Finish(rerr)
		f.Close()
		if err != nil || !rep.Verified || rep.Problems.Count > 0 {
			b.Fatalf("err %v, verified %v, problems %v", err, rep.Verified, rep.Problems)
		}
		b.SetBytes(res.ObjectBytes)
		b.ReportMetric(float64(rep.Bytes)/1e6/b.Elapsed().Seconds(), "MB_plain/s")
	}
}
