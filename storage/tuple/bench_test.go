package tuple_test

import (
	"testing"

	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// auditKey is a typical key: one audit event of one tenant.
var auditKey = tuple.Tuple{"coditect", "t", "acme-corp", "audit",
	kv.NewVersionstamp([10]byte{0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 1}, 3)}

func BenchmarkPack(b *testing.B) {
	b.Run("Tuple.Pack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = auditKey.Pack()
		}
	})
	b.Run("Tuple.Append/reused buffer", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = auditKey.Append(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("typed appenders/prefix", func(b *testing.B) {
		// How storage/keyspace builds the key: a packed tenant prefix, then
		// the last two elements.
		prefix := tuple.Tuple{"coditect", "t", "acme-corp"}.Pack()
		stamp := auditKey[4].(kv.Versionstamp)
		b.ReportAllocs()
		for b.Loop() {
			key := make([]byte, len(prefix), len(prefix)+24)
			copy(key, prefix)
			_ = tuple.AppendVersionstamp(tuple.AppendString(key, "audit"), stamp)
		}
	})
}

func BenchmarkUnpack(b *testing.B) {
	packed := auditKey.Pack()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tuple.Unpack(packed); err != nil {
			b.Fatal(err)
		}
	}
}
