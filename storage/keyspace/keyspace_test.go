package keyspace_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

var (
	commit = [kv.StampSize]byte{0, 0, 0, 0, 0, 0, 0x30, 0x39, 0, 1}
	stamp  = kv.NewVersionstamp(commit, 4)
)

func mustTenant(t testing.TB, id string) keyspace.TenantSpace {
	t.Helper()
	ts, err := keyspace.Tenant(id)
	if err != nil {
		t.Fatalf("Tenant(%q): %v", id, err)
	}
	return ts
}

func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestLayout pins every builder to the tuple ARCHITECTURE.md §4 gives it:
// the keys are the on-disk format.
func TestLayout(t *testing.T) {
	acme := mustTenant(t, "acme")
	agent := must(acme.Agent("claude-1"))(t)
	hash := sha256.Sum256([]byte("secret-token"))
	tk := func(elems ...tuple.Element) tuple.Tuple {
		return append(tuple.Tuple{"coditect", "t", "acme"}, elems...)
	}
	tests := []struct {
		name string
		got  []byte
		want tuple.Tuple
	}{
		{"root", keyspace.Root().Bytes(), tuple.Tuple{"coditect"}},
		{"tenants", keyspace.Tenants().Bytes(), tuple.Tuple{"coditect", "t"}},
		{"tenant", acme.Subspace().Bytes(), tk()},
		{"meta", acme.Meta(), tk("meta")},
		{"user", must(acme.User("ada"))(t), tk("user", "ada")},
		{"users", acme.Users().Bytes(), tk("user")},
		{"session", must(acme.Session("s-1"))(t), tk("session", "s-1")},
		{"sessions", acme.Sessions().Bytes(), tk("session")},
		{"audit", acme.Audit().Bytes(), tk("audit")},
		{"audit event", must(acme.AuditEvent(stamp))(t), tk("audit", stamp)},
		{"audit head", acme.AuditHead(), tk("audit_head")},
		{"audit high water", acme.AuditHighWater(), tk("audit_clock", "high_water")},
		{"audit regression", acme.AuditRegression(), tk("audit_clock", "regression")},
		{"audit spool", must(acme.AuditSpool("host-1-ab"))(t), tk("audit_spool", "host-1-ab")},
		{"audit indexes", acme.AuditIndexes().Bytes(), tk("audit_by")},
		{"audit index", must(acme.AuditIndex(keyspace.IndexPath, "src/a.go"))(t).Bytes(), tk("audit_by", "path", "src/a.go")},
		{"audit index entry", must(acme.AuditIndexEntry(keyspace.IndexSession, "s-1", stamp))(t), tk("audit_by", "session", "s-1", stamp)},
		{"agents", acme.Agents().Bytes(), tk("agent")},
		{"agent", agent.Subspace().Bytes(), tk("agent", "claude-1")},
		{"agent record", agent.Record(), tk("agent", "claude-1", "record")},
		{"agent heartbeat", agent.Heartbeat(), tk("agent", "claude-1", "heartbeat")},
		{"agent cohort", agent.Cohort(), tk("agent", "claude-1", "cohort")},
		{"leases", acme.Leases().Bytes(), tk("lease")},
		{"lease", must(acme.Lease("src/main.go"))(t), tk("lease", "src/main.go")},
		{"inbox", must(acme.Inbox("claude-1"))(t).Bytes(), tk("inbox", "claude-1")},
		{"inbox message", must(acme.InboxMessage("claude-1", stamp))(t), tk("inbox", "claude-1", stamp)},
		{"inbox head", must(acme.InboxHead("claude-1"))(t), tk("inbox_head", "claude-1")},
		{"tasks", acme.Tasks().Bytes(), tk("task")},
		{"task", must(acme.Task("t-9"))(t), tk("task", "t-9")},
		{"counter", must(acme.Counter("fence"))(t), tk("counter", "fence")},
		{"idempotency", must(acme.Idempotency("req-1"))(t), tk("idem", "req-1")},
		{"tenant index", must(keyspace.TenantIndex("acme"))(t), tuple.Tuple{"coditect", "idx", "tenant", "acme"}},
		{"tenant indexes", keyspace.TenantIndexes().Bytes(), tuple.Tuple{"coditect", "idx", "tenant"}},
		{"session index", must(keyspace.SessionIndex("s-1"))(t), tuple.Tuple{"coditect", "idx", "session", "s-1"}},
		{"session indexes", keyspace.SessionIndexes().Bytes(), tuple.Tuple{"coditect", "idx", "session"}},
		{"token", keyspace.Token(hash), tuple.Tuple{"coditect", "token", hash[:]}},
		{"tokens", keyspace.Tokens().Bytes(), tuple.Tuple{"coditect", "token"}},
	}
	for _, tc := range tests {
		if want := tc.want.Pack(); !bytes.Equal(tc.got, want) {
			t.Errorf("%s: key %s, want %v = %s", tc.name, kv.DisplayKey(tc.got), tc.want, kv.DisplayKey(want))
		}
	}
}

// TestTemplates checks each versionstamp template: the incomplete stamp
// with the caller's order at the offset, the tuple FDB's tuple layer would
// pack, and the committed key once the stamp is filled in.
func TestTemplates(t *testing.T) {
	acme := mustTenant(t, "acme")
	tk := func(elems ...tuple.Element) tuple.Tuple {
		return append(tuple.Tuple{"coditect", "t", "acme"}, elems...)
	}
	type tmpl struct {
		template []byte
		offset   int
	}
	newIndex := func() tmpl {
		b, o := must2(acme.NewAuditIndexEntry("path", "a\x00b", 4))(t)
		return tmpl{b, o}
	}
	newInbox := func() tmpl {
		b, o := must2(acme.NewInboxMessage("claude-1", 4))(t)
		return tmpl{b, o}
	}
	auditT, auditO := acme.NewAuditEvent(4)
	tests := []struct {
		name      string
		got       tmpl
		want      tuple.Tuple // with kv.IncompleteVersionstamp(4)
		committed func() ([]byte, error)
	}{
		{"audit event", tmpl{auditT, auditO}, tk("audit", kv.IncompleteVersionstamp(4)),
			func() ([]byte, error) { return acme.AuditEvent(stamp) }},
		{"audit index entry", newIndex(), tk("audit_by", "path", "a\x00b", kv.IncompleteVersionstamp(4)),
			func() ([]byte, error) { return acme.AuditIndexEntry("path", "a\x00b", stamp) }},
		{"inbox message", newInbox(), tk("inbox", "claude-1", kv.IncompleteVersionstamp(4)),
			func() ([]byte, error) { return acme.InboxMessage("claude-1", stamp) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantT, wantO, err := tc.want.PackWithVersionstamp(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tc.got.template, wantT) || tc.got.offset != wantO {
				t.Fatalf("template %s at %d, want %s at %d",
					kv.DisplayKey(tc.got.template), tc.got.offset, kv.DisplayKey(wantT), wantO)
			}
			filled := bytes.Clone(tc.got.template)
			copy(filled[tc.got.offset:], commit[:])
			committed, err := tc.committed()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(filled, committed) {
				t.Errorf("filled template %s, committed key %s", kv.DisplayKey(filled), kv.DisplayKey(committed))
			}
		})
	}
}

func must2[A, B any](a A, b B, err error) func(testing.TB) (A, B) {
	return func(t testing.TB) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

func TestIncompleteStampRefused(t *testing.T) {
	acme := mustTenant(t, "acme")
	inc := kv.IncompleteVersionstamp(1)
	for name, build := range map[string]func() ([]byte, error){
		"AuditEvent":      func() ([]byte, error) { return acme.AuditEvent(inc) },
		"AuditIndexEntry": func() ([]byte, error) { return acme.AuditIndexEntry("path", "x", inc) },
		"InboxMessage":    func() ([]byte, error) { return acme.InboxMessage("a", inc) },
	} {
		if key, err := build(); !errors.Is(err, tuple.ErrIncompleteVersionstamp) || key != nil {
			t.Errorf("%s(incomplete stamp) = %s, %v; want ErrIncompleteVersionstamp", name, kv.DisplayKey(key), err)
		}
	}
}

// TestInvalidIDs: every builder refuses an empty id, invalid UTF-8 and an id
// over its limit with ErrInvalidID, and returns no key.
func TestInvalidIDs(t *testing.T) {
	acme := mustTenant(t, "acme")
	tests := []struct {
		name string
		id   string
	}{
		{"empty", ""},
		{"lone 0xff", "\xff"},
		{"0xff inside", "a\xffb"},
		{"truncated UTF-8", "\xc3"},
		{"surrogate half", "\xed\xa0\xbd"},
		{"10 kB of junk", junk(10_000)},
		{"10 kB of valid text", strings.Repeat("é/\x00", 2000)},
		{"one byte over the resource limit", strings.Repeat("r", keyspace.MaxResourceSize+1)},
	}
	for _, tc := range tests {
		for _, b := range builders {
			if b.limit == 0 {
				continue
			}
			_, err := b.build(acme, tc.id)
			if !errors.Is(err, keyspace.ErrInvalidID) {
				t.Errorf("%s with %s id: error %v, want ErrInvalidID", b.name, tc.name, err)
			}
		}
		if ts, err := keyspace.Tenant(tc.id); !errors.Is(err, keyspace.ErrInvalidID) {
			t.Errorf("Tenant(%s) = %v, %v; want ErrInvalidID", tc.name, ts, err)
		}
		for name, build := range map[string]func(string) ([]byte, error){
			"TenantIndex": keyspace.TenantIndex, "SessionIndex": keyspace.SessionIndex,
		} {
			if key, err := build(tc.id); !errors.Is(err, keyspace.ErrInvalidID) || key != nil {
				t.Errorf("%s(%s) = %s, %v; want ErrInvalidID", name, tc.name, kv.DisplayKey(key), err)
			}
		}
	}
	// Ids one byte over MaxIDSize are refused where the limit is MaxIDSize
	// and accepted where it is MaxResourceSize.
	over := strings.Repeat("i", keyspace.MaxIDSize+1)
	for _, b := range builders {
		_, err := b.build(acme, over)
		switch {
		case b.limit == keyspace.MaxIDSize && !errors.Is(err, keyspace.ErrInvalidID):
			t.Errorf("%s accepted an id of %d bytes", b.name, len(over))
		case b.limit != keyspace.MaxIDSize && err != nil:
			t.Errorf("%s refused an id of %d bytes: %v", b.name, len(over), err)
		}
	}
	if _, err := keyspace.Tenant(over); !errors.Is(err, keyspace.ErrInvalidID) {
		t.Errorf("Tenant accepted an id of %d bytes", len(over))
	}
}

// TestLongestKeysFit: ids at their limits, made of 0x00 bytes (which the
// encoding doubles), still give keys within kv.MaxKeySize.
func TestLongestKeysFit(t *testing.T) {
	ts := mustTenant(t, strings.Repeat("\x00", keyspace.MaxIDSize))
	for _, id := range []string{strings.Repeat("\x00", keyspace.MaxIDSize), strings.Repeat("\x00", keyspace.MaxResourceSize)} {
		for _, b := range builders {
			if len(id) > b.limit && b.limit != 0 {
				continue
			}
			got, err := b.build(ts, id)
			if err != nil {
				t.Fatalf("%s: %v", b.name, err)
			}
			for _, k := range got.keys {
				if err := kv.CheckKey("set", k); err != nil {
					t.Errorf("%s: %v", b.name, err)
				}
			}
		}
	}
}

func TestZeroTenantSpacePanics(t *testing.T) {
	var zero keyspace.TenantSpace
	if s := zero.String(); s == "" {
		t.Errorf("zero TenantSpace renders as an empty string")
	}
	for name, use := range map[string]func(){
		"Meta":     func() { zero.Meta() },
		"User":     func() { _, _ = zero.User("u") },
		"Contains": func() { zero.Contains([]byte("x")) },
		"Range":    func() { zero.Range() },
		"Agent":    func() { _, _ = zero.Agent("a") },
		"AgentSpace.Record": func() {
			var a keyspace.AgentSpace
			a.Record()
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s on a zero value did not panic", name)
				}
			}()
			use()
		}()
	}
}

func TestTenantString(t *testing.T) {
	if got, want := mustTenant(t, "acme").String(), `("coditect", "t", "acme")`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got := mustTenant(t, "acme").ID(); got != "acme" {
		t.Errorf("ID() = %q", got)
	}
}

// TestAuditClockKeys: the audit clock keys lie outside the ranges of the
// events and their indexes, which audit scans walk and decode, and sort
// after both, so a key-ordered copy of a live log copies them after the
// events they cover.
func TestAuditClockKeys(t *testing.T) {
	acme := mustTenant(t, "acme")
	for name, k := range map[string][]byte{"high water": acme.AuditHighWater(), "regression": acme.AuditRegression()} {
		for _, s := range []keyspace.Subspace{acme.Audit(), acme.AuditIndexes()} {
			if s.Contains(k) {
				t.Errorf("%s key %s is inside %s", name, kv.DisplayKey(k), s)
			}
			if _, end := s.Range(); bytes.Compare(k, end) < 0 {
				t.Errorf("%s key %s sorts before the end of %s", name, kv.DisplayKey(k), s)
			}
		}
		if !acme.Contains(k) {
			t.Errorf("%s key %s is outside the tenant", name, kv.DisplayKey(k))
		}
	}
}
