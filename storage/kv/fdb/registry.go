package fdb

import (
	"bytes"
	"context"
	"fmt"

	"github.com/coditect/coditect/storage/kv"
)

// registryPrefix is where the stores of a cluster record their prefixes:
// one key per prefix, registryPrefix followed by the prefix's bytes (the
// whole keyspace's store records registryPrefix itself). It lies outside
// the keys any other store may use: prefixes that overlap it are refused,
// and 0xfd is no tuple type code, so no tuple-encoded prefix starts with it.
var registryPrefix = []byte("\xfdcoditect/stores/")

// overlaps reports whether two distinct prefixes overlap: one is a prefix
// of the other, so that one store's keys include the other's. Equal
// prefixes name the same store, which several processes may open.
func overlaps(a, b []byte) bool {
	return !bytes.Equal(a, b) && (bytes.HasPrefix(a, b) || bytes.HasPrefix(b, a))
}

// register records the store's prefix in the cluster's registry unless a
// store with an overlapping prefix is recorded there (acme/ contains
// acme-staging/ only without the slash: acme contains acme-staging). The
// read of the whole registry joins the transaction's conflict ranges, so two
// overlapping stores opening at once cannot both register.
func (s *Store) register(ctx context.Context) error {
	var clash []byte
	err := s.transact(ctx, func(t *tx) error {
		clash = nil
		it := t.tr.GetRange(registryPrefix, kv.PrefixEnd(registryPrefix), 0, false, true)
		for it.Advance() {
			k, _, err := it.Get()
			if err != nil {
				return opErr(ctx, "read the store registry", nil, err, t.old())
			}
			if p := k[len(registryPrefix):]; overlaps(p, s.prefix) {
				clash = p
				return nil
			}
		}
		t.tr.Set(s.registryKey(), nil)
		return nil
	})
	if err != nil {
		return fmt.Errorf("fdb: register the store's prefix %s: %w", kv.DisplayKey(s.prefix), err)
	}
	if clash != nil {
		return fmt.Errorf("fdb: prefix %s: %w: it overlaps the prefix %s of another store on this cluster "+
			"(one is a prefix of the other, so each would see the other's keys); choose disjoint prefixes, e.g. ending in /",
			describePrefix(s.prefix), ErrPrefixOverlap, describePrefix(clash))
	}
	return nil
}

// ErrPrefixOverlap: a store's prefix overlaps another store's on the same
// cluster.
var ErrPrefixOverlap = fmt.Errorf("overlapping store prefixes")

func describePrefix(p []byte) string {
	if len(p) == 0 {
		return "(none: the whole keyspace)"
	}
	return kv.DisplayKey(p)
}

// Drop clears every key of the store and removes its prefix from the
// cluster's registry, so that a store with an overlapping prefix can be
// opened afterwards. The store stays usable; a later Open registers the
// prefix again.
func (s *Store) Drop(ctx context.Context) error {
	return s.transact(ctx, func(t *tx) error {
		t.tr.ClearRange(s.key(nil), s.end)
		t.tr.Clear(s.registryKey())
		return nil
	})
}

// Unregister removes the store's prefix from the cluster's registry and
// keeps its keys.
func (s *Store) Unregister(ctx context.Context) error {
	return s.transact(ctx, func(t *tx) error {
		t.tr.Clear(s.registryKey())
		return nil
	})
}

func (s *Store) registryKey() []byte { return append(bytes.Clone(registryPrefix), s.prefix...) }
