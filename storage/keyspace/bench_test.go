package keyspace_test

import "testing"

// BenchmarkAuditKey measures building the keys of one audit append: the
// event's template and one secondary index entry's.
func BenchmarkAuditKey(b *testing.B) {
	ts := mustTenant(b, "acme-corp")
	b.Run("NewAuditEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ts.NewAuditEvent(1)
		}
	})
	b.Run("NewAuditIndexEntry", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ts.NewAuditIndexEntry("path", "src/storage/kv/kv.go", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AuditEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ts.AuditEvent(stamp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
