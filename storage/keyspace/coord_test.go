package keyspace_test

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tuple"
)

func TestCoordLayout(t *testing.T) {
	acme := mustTenant(t, "acme")
	tk := func(elems ...tuple.Element) tuple.Tuple {
		return append(tuple.Tuple{"coditect", "t", "acme"}, elems...)
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want tuple.Tuple
	}{
		{"agent identity", must(acme.AgentIdentity("alice", "lmstudio", "coder"))(t), tk("agent_by_identity", "alice", "lmstudio", "coder")},
		{"agent identities", acme.AgentIdentities().Bytes(), tk("agent_by_identity")},
		{"cohorts", acme.Cohorts().Bytes(), tk("cohort_member")},
		{"cohort members", must(acme.CohortMembers("crew"))(t).Bytes(), tk("cohort_member", "crew")},
		{"cohort member", must(acme.CohortMember("crew", "ag_1"))(t), tk("cohort_member", "crew", "ag_1")},
		{"lease globs", acme.LeaseGlobs().Bytes(), tk("lease_glob")},
		{"lease glob", must(acme.LeaseGlob("src/**"))(t), tk("lease_glob", "src/**")},
		{"lease fence", must(acme.LeaseFence("src/a.go"))(t), tk("lease_fence", "src/a.go")},
		{"acked inbox", must(acme.AckedInbox("ag_1"))(t).Bytes(), tk("inbox_acked", "ag_1")},
		{"acked message", must(acme.AckedInboxMessage("ag_1", stamp))(t), tk("inbox_acked", "ag_1", stamp)},
		{"inbox unread", must(acme.InboxUnread("ag_1"))(t), tk("inbox_unread", "ag_1")},
		{"task indexes", acme.TaskIndexes().Bytes(), tk("task_by")},
		{"task index", must(acme.TaskIndex("state", "open"))(t).Bytes(), tk("task_by", "state", "open")},
		{"task index entry", must(acme.TaskIndexEntry("state", "open", "tk_1"))(t), tk("task_by", "state", "open", "tk_1")},
	} {
		if want := tc.want.Pack(); !bytes.Equal(tc.got, want) {
			t.Errorf("%s: key %s, want %v", tc.name, kv.DisplayKey(tc.got), tc.want)
		}
		if !acme.Contains(tc.got) && !bytes.Equal(tc.got, acme.Subspace().Bytes()) {
			t.Errorf("%s: key %s outside the tenant", tc.name, kv.DisplayKey(tc.got))
		}
		if other := mustTenant(t, "acme\x00"); other.Contains(tc.got) {
			t.Errorf("%s: key %s inside another tenant", tc.name, kv.DisplayKey(tc.got))
		}
	}
	// An acked message is outside the unacked inbox, and the unread count
	// outside both.
	inbox := must(acme.Inbox("ag_1"))(t)
	if acked := must(acme.AckedInboxMessage("ag_1", stamp))(t); inbox.Contains(acked) {
		t.Error("acked message inside the inbox")
	}
	if unread := must(acme.InboxUnread("ag_1"))(t); inbox.Contains(unread) || must(acme.AckedInbox("ag_1"))(t).Contains(unread) {
		t.Error("unread counter inside an inbox")
	}
}

func TestCoordInvalidIDs(t *testing.T) {
	acme := mustTenant(t, "acme")
	long := strings.Repeat("x", keyspace.MaxIDSize+1)
	longRes := strings.Repeat("x", keyspace.MaxResourceSize+1)
	for _, tc := range []struct {
		name string
		err  func(id string) error
		ids  []string
	}{
		{"AgentIdentity user", func(id string) error { _, err := acme.AgentIdentity(id, "c", "n"); return err }, []string{"", long, "\xff"}},
		{"AgentIdentity client", func(id string) error { _, err := acme.AgentIdentity("u", id, "n"); return err }, []string{"", long, "\xff"}},
		{"AgentIdentity name", func(id string) error { _, err := acme.AgentIdentity("u", "c", id); return err }, []string{"", long, "\xff"}},
		{"CohortMembers", func(id string) error { _, err := acme.CohortMembers(id); return err }, []string{"", long, "\xff"}},
		{"CohortMember cohort", func(id string) error { _, err := acme.CohortMember(id, "a"); return err }, []string{"", long}},
		{"CohortMember agent", func(id string) error { _, err := acme.CohortMember("c", id); return err }, []string{"", long}},
		{"LeaseGlob", func(id string) error { _, err := acme.LeaseGlob(id); return err }, []string{"", longRes, "\xff"}},
		{"LeaseFence", func(id string) error { _, err := acme.LeaseFence(id); return err }, []string{"", longRes, "\xff"}},
		{"LeasesWithPrefix", func(id string) error { _, _, err := acme.LeasesWithPrefix(id); return err }, []string{longRes, "\xff"}},
		{"AckedInbox", func(id string) error { _, err := acme.AckedInbox(id); return err }, []string{"", long}},
		{"AckedInboxMessage", func(id string) error { _, err := acme.AckedInboxMessage(id, stamp); return err }, []string{"", long}},
		{"InboxUnread", func(id string) error { _, err := acme.InboxUnread(id); return err }, []string{"", long}},
		{"TaskIndex field", func(id string) error { _, err := acme.TaskIndex(id, "v"); return err }, []string{"", long}},
		{"TaskIndex value", func(id string) error { _, err := acme.TaskIndex("f", id); return err }, []string{"", long}},
		{"TaskIndexEntry task", func(id string) error { _, err := acme.TaskIndexEntry("f", "v", id); return err }, []string{"", long}},
	} {
		for _, id := range tc.ids {
			if err := tc.err(id); !errors.Is(err, keyspace.ErrInvalidID) {
				t.Errorf("%s(%s): %v; want ErrInvalidID", tc.name, kv.DisplayKey([]byte(id)), err)
			}
		}
	}
	if _, err := acme.AckedInboxMessage("a", kv.IncompleteVersionstamp(0)); err == nil {
		t.Error("AckedInboxMessage accepted an incomplete stamp")
	}
}

// TestLeasesWithPrefix: the range holds exactly the lease keys whose
// resource starts with the prefix, for hostile resources too.
func TestLeasesWithPrefix(t *testing.T) {
	acme := mustTenant(t, "acme")
	resources := []string{"", "s", "sr", "src", "src/", "src/a.go", "src/a\x00b", "src\x00", "src\xff"[:3] + "\u00ff",
		"srd", "sra", "src/**", "lib/x", "\x00", "\U0010ffff", "task:tk_1"}
	var keys [][]byte
	for _, r := range resources {
		if r == "" {
			continue
		}
		keys = append(keys, must(acme.Lease(r))(t))
	}
	// Keys that are near but not leases: other elements of the tenant.
	keys = append(keys, must(acme.LeaseFence("src/a.go"))(t), must(acme.LeaseGlob("src/**"))(t), must(acme.Task("src"))(t))
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	for _, prefix := range []string{"", "s", "src", "src/", "src\x00", "\x00", "task:", "zzz"} {
		begin, end, err := acme.LeasesWithPrefix(prefix)
		if err != nil {
			t.Fatal(err)
		}
		lb, le := acme.Leases().Range()
		if bytes.Compare(begin, lb) < 0 || bytes.Compare(end, le) > 0 {
			t.Errorf("prefix %q: range outside the leases", prefix)
		}
		for _, k := range keys {
			in := bytes.Compare(k, begin) >= 0 && bytes.Compare(k, end) < 0
			want := false
			if tup, err := acme.Leases().Unpack(k); err == nil && acme.Leases().Contains(k) {
				want = strings.HasPrefix(tup[0].(string), prefix)
			}
			if in != want {
				t.Errorf("prefix %q: key %s in range = %v, want %v", prefix, kv.DisplayKey(k), in, want)
			}
		}
	}
}
