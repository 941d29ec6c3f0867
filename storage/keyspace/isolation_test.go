package keyspace_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

// built is what one builder produced: keys (versionstamp templates
// included, and the same keys with the stamp filled in) and subspaces.
type built struct {
	keys   [][]byte
	spaces []keyspace.Subspace
}

// builder builds keys of tenant t from one id. limit is the id's limit in
// bytes, 0 when the builder takes no id (and ignores it).
type builder struct {
	name  string
	limit int
	build func(t keyspace.TenantSpace, id string) (built, error)
}

func key(k []byte, err error) (built, error) { return built{keys: [][]byte{k}}, err }

func space(s keyspace.Subspace, err error) (built, error) {
	return built{spaces: []keyspace.Subspace{s}}, err
}

// template returns a template and the key it becomes once committed.
func template(k []byte, offset int, err error) (built, error) {
	if err != nil {
		return built{}, err
	}
	filled := bytes.Clone(k)
	copy(filled[offset:], commit[:])
	return built{keys: [][]byte{k, filled}}, nil
}

func template2(k []byte, offset int) (built, error) { return template(k, offset, nil) }

// builders covers every TenantSpace builder; with a two-id builder, one
// entry per id.
var builders = []builder{
	{"Subspace", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Subspace(), nil) }},
	{"Meta", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return key(t.Meta(), nil) }},
	{"User", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.User(id)) }},
	{"Users", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Users(), nil) }},
	{"Session", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.Session(id)) }},
	{"Sessions", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Sessions(), nil) }},
	{"Audit", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Audit(), nil) }},
	{"AuditEvent", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return key(t.AuditEvent(stamp)) }},
	{"NewAuditEvent", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return template2(t.NewAuditEvent(0xffff)) }},
	{"AuditHead", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return key(t.AuditHead(), nil) }},
	{"AuditHighWater", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return key(t.AuditHighWater(), nil) }},
	{"AuditRegression", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return key(t.AuditRegression(), nil) }},
	{"AuditIndexes", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.AuditIndexes(), nil) }},
	{"AuditIndex(name)", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return space(t.AuditIndex(id, "v"))
	}},
	{"AuditIndex(value)", keyspace.MaxResourceSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return space(t.AuditIndex(keyspace.IndexPath, id))
	}},
	{"AuditIndexEntry(name)", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return key(t.AuditIndexEntry(id, "v", stamp))
	}},
	{"AuditIndexEntry(value)", keyspace.MaxResourceSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return key(t.AuditIndexEntry(keyspace.IndexAgent, id, stamp))
	}},
	{"NewAuditIndexEntry(name)", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return template(t.NewAuditIndexEntry(id, "v", 1))
	}},
	{"NewAuditIndexEntry(value)", keyspace.MaxResourceSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return template(t.NewAuditIndexEntry(keyspace.IndexKind, id, 1))
	}},
	{"Agents", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Agents(), nil) }},
	{"Agent", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		a, err := t.Agent(id)
		if err != nil {
			return built{}, err
		}
		return built{keys: [][]byte{a.Record(), a.Heartbeat(), a.Cohort()}, spaces: []keyspace.Subspace{a.Subspace()}}, nil
	}},
	{"Leases", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Leases(), nil) }},
	{"Lease", keyspace.MaxResourceSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.Lease(id)) }},
	{"Inbox", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return space(t.Inbox(id)) }},
	{"InboxMessage", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return key(t.InboxMessage(id, stamp))
	}},
	{"NewInboxMessage", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return template(t.NewInboxMessage(id, 2))
	}},
	{"InboxHead", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.InboxHead(id)) }},
	{"Tasks", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Tasks(), nil) }},
	{"Task", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.Task(id)) }},
	{"Counter", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.Counter(id)) }},
	{"Idempotency", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return key(t.Idempotency(id))
	}},
	{"Projects", 0, func(t keyspace.TenantSpace, _ string) (built, error) { return space(t.Projects(), nil) }},
	{"Project", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) { return key(t.Project(id)) }},
	{"ProjectByName", keyspace.MaxIDSize, func(t keyspace.TenantSpace, id string) (built, error) {
		return key(t.ProjectByName(id))
	}},
}

// junk returns n deterministic bytes of everything: 0x00, 0xff, tuple type
// codes, invalid UTF-8.
func junk(n int) string {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

func validID(id string, limit int) bool {
	return id != "" && len(id) <= limit && utf8.ValidString(id)
}

// checkIsolation builds every key of tenant a from id and checks that each
// lies in a's range and outside b's, and that invalid ids give errors.
func checkIsolation(t *testing.T, a, b keyspace.TenantSpace, id string) {
	t.Helper()
	aBegin, aEnd := a.Range()
	bBegin, bEnd := b.Range()
	for _, bl := range builders {
		got, err := bl.build(a, id)
		if bl.limit != 0 && !validID(id, bl.limit) {
			if !errors.Is(err, keyspace.ErrInvalidID) || len(got.keys) > 0 && got.keys[0] != nil {
				t.Errorf("%s(%s, id %s) = %v, %v; want ErrInvalidID and no key", bl.name, a, kv.DisplayKey([]byte(id)), got.keys, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s(%s, id %s): %v", bl.name, a, kv.DisplayKey([]byte(id)), err)
			continue
		}
		for _, k := range got.keys {
			if !a.Contains(k) || bytes.Compare(k, aBegin) < 0 || bytes.Compare(k, aEnd) >= 0 {
				t.Errorf("%s(%s, id %s) = %s outside its own tenant's range", bl.name, a, kv.DisplayKey([]byte(id)), kv.DisplayKey(k))
			}
			if b.Contains(k) || bytes.Compare(k, bBegin) >= 0 && bytes.Compare(k, bEnd) < 0 {
				t.Errorf("%s(%s, id %s) = %s inside tenant %s's range", bl.name, a, kv.DisplayKey([]byte(id)), kv.DisplayKey(k), b)
			}
			if !keyspace.Tenants().Contains(k) {
				t.Errorf("%s(%s) = %s outside Tenants()", bl.name, a, kv.DisplayKey(k))
			}
		}
		for _, s := range got.spaces {
			begin, end := s.Range()
			if bytes.Compare(begin, aBegin) < 0 || bytes.Compare(end, aEnd) > 0 {
				t.Errorf("%s(%s, id %s) = subspace %s not inside its tenant's range", bl.name, a, kv.DisplayKey([]byte(id)), s)
			}
			if bytes.Compare(begin, bEnd) < 0 && bytes.Compare(bBegin, end) < 0 {
				t.Errorf("%s(%s, id %s) = subspace %s overlaps tenant %s", bl.name, a, kv.DisplayKey([]byte(id)), s, b)
			}
		}
	}
}

// checkGlobal: the global keys built from id lie in no tenant's range.
func checkGlobal(t *testing.T, id string, tenants ...keyspace.TenantSpace) {
	t.Helper()
	var keys [][]byte
	if k, err := keyspace.SessionIndex(id); err == nil {
		keys = append(keys, k)
	}
	if k, err := keyspace.TenantIndex(id); err == nil {
		keys = append(keys, k)
	}
	keys = append(keys, keyspace.Token(sha256.Sum256([]byte(id))))
	if k, err := keyspace.RootEntry(id, id); err == nil {
		keys = append(keys, k)
	}
	if b, e, err := keyspace.RootsBelow(id, id); err == nil {
		keys = append(keys, b, e)
	}
	for _, k := range keys {
		if keyspace.Tenants().Contains(k) {
			t.Errorf("global key %s inside Tenants()", kv.DisplayKey(k))
		}
		for _, ts := range tenants {
			if ts.Contains(k) {
				t.Errorf("global key %s inside tenant %s", kv.DisplayKey(k), ts)
			}
		}
	}
}

// hostileIDs are tenant ids (all valid) chosen to collide: path separators,
// nulls, the encoded bytes of another tenant's prefix and keys, the element
// names the layout uses, the longest ids.
func hostileIDs() []string {
	packedA := string(tuple.Tuple{"coditect", "t", "a"}.Pack())
	return []string{
		"a", "b", "ab", "a\x00", "a\x00b", "a\x00\x02user", "a\x00\x02user\x00\x02bob\x00", "a\x01", "a/",
		"a/users/b", "/", "/coditect/tenants/a", "\x00", "\x00\x00", "\x00\x01", "t", "user", "audit",
		packedA, packedA + "\x02user\x00", "a\x00\x02audit\x00\x33" + strings.Repeat("\x00", 12),
		"é", "\U0010ffff", strings.Repeat("\x00", keyspace.MaxIDSize), strings.Repeat("z", keyspace.MaxIDSize),
	}
}

// TestTenantIsolation: for every ordered pair of distinct hostile tenant
// ids, and every hostile or invalid id given to every builder, no key of one
// tenant lies in the other's range.
func TestTenantIsolation(t *testing.T) {
	tenantIDs := hostileIDs()
	ids := append(hostileIDs(),
		"", "\xff", "a\xff", "\xff\x00", junk(10_000), strings.Repeat("é/\x00", 2000), // invalid
		strings.Repeat("\x00", keyspace.MaxResourceSize), "../b/user/x", "bob")
	tenants := make([]keyspace.TenantSpace, len(tenantIDs))
	for i, id := range tenantIDs {
		tenants[i] = mustTenant(t, id)
	}
	for i, a := range tenants {
		for j, b := range tenants {
			if i == j {
				continue
			}
			for _, id := range ids {
				checkIsolation(t, a, b, id)
			}
			for _, id := range []string{tenantIDs[i], tenantIDs[j]} {
				checkIsolation(t, a, b, id)
			}
		}
	}
	for _, id := range ids {
		checkGlobal(t, id, tenants...)
	}
}

// TestTenantRangesDisjoint: the ranges of distinct tenants do not overlap,
// and each lies inside Tenants().
func TestTenantRangesDisjoint(t *testing.T) {
	ids := hostileIDs()
	allBegin, allEnd := keyspace.Tenants().Range()
	for i, x := range ids {
		a := mustTenant(t, x)
		aBegin, aEnd := a.Range()
		if bytes.Compare(aBegin, allBegin) < 0 || bytes.Compare(aEnd, allEnd) > 0 {
			t.Errorf("tenant %s's range is not inside Tenants()", a)
		}
		for _, y := range ids[i+1:] {
			b := mustTenant(t, y)
			bBegin, bEnd := b.Range()
			if bytes.Compare(aBegin, bEnd) < 0 && bytes.Compare(bBegin, aEnd) < 0 {
				t.Errorf("ranges of tenants %s and %s overlap", a, b)
			}
		}
	}
}

// FuzzTenantIsolation: two distinct tenant ids and arbitrary user, session,
// agent and resource ids from the fuzzer. Invalid ids give errors; no key
// built for tenant a falls in tenant b's range, and every one falls in a's.
func FuzzTenantIsolation(f *testing.F) {
	f.Add("a", "a\x00\x02user", "bob", "s-1", "claude", "src/main.go")
	f.Add("a", "a\x00", "\x00", "\x00\xff", "/", "../../b")
	f.Add("acme", string(tuple.Tuple{"coditect", "t", "acme"}.Pack()), "a/users/b", "", "\xff", junk(300))
	f.Add("", "b", "u", "s", "a", "r")
	f.Add("x\x00\x02t\x00", "x", strings.Repeat("\x00", 256), "s", "a", strings.Repeat("\x00", 4096))
	f.Fuzz(func(t *testing.T, tenantA, tenantB, user, session, agent, resource string) {
		a, errA := keyspace.Tenant(tenantA)
		b, errB := keyspace.Tenant(tenantB)
		for _, c := range []struct {
			id  string
			err error
		}{{tenantA, errA}, {tenantB, errB}} {
			if valid := validID(c.id, keyspace.MaxIDSize); valid != (c.err == nil) {
				t.Fatalf("Tenant(%s): error %v, valid %v", kv.DisplayKey([]byte(c.id)), c.err, valid)
			}
		}
		if errA != nil || errB != nil || tenantA == tenantB {
			return
		}
		for _, id := range []string{user, session, agent, resource, tenantB} {
			checkIsolation(t, a, b, id)
			checkIsolation(t, b, a, id)
		}
		checkGlobal(t, session, a, b)
	})
}
