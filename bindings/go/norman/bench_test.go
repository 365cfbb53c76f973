package norman_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// BenchmarkUpload streams NORMAN_BENCH_MIB MiB (default 256) from memory through Upload.Write with
// 64 KiB and 1 MiB writes to an asset socket of `norman serve`, as `bench push` does through the C
// API (scripts/bench-bindings.sh runs both against one server and compares).
func BenchmarkUpload(b *testing.B) {
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("NORMAN_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	total := int64(mib) << 20
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 131 % 251) // the C benchmark's content
	}
	for _, size := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("write=%d", size), func(b *testing.B) {
			a := newAccount(b)
			_, target := a.newModel(b, "go-bench")
			ctx := context.Background()
			b.SetBytes(total)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				upload, err := a.client.BeginUpload(ctx, target, total)
				if err != nil {
					b.Fatal(err)
				}
				for sent := int64(0); sent < total; {
					at := sent % int64(len(data))
					n := int64(size)
					if n > total-sent {
						n = total - sent
					}
					if n > int64(len(data))-at {
						n = int64(len(data)) - at
					}
					if _, err := upload.Write(data[at : at+n]); err != nil {
						b.Fatal(err)
					}
					sent += n
				}
				if _, err := upload.Finish(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkChecksum(b *testing.B) {
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		_ = norman.ChecksumBytes(data)
	}
}
