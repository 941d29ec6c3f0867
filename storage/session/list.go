package session

import (
	"context"
	"fmt"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/tenant"
)

// Get returns a session of the scope's tenant. A session of another tenant
// is ErrNotFound, exactly as one that does not exist.
func Get(ctx context.Context, sc *tenant.Scope, id string) (Session, error) {
	id, err := ParseID(id)
	if err != nil {
		return Session{}, err
	}
	var s Session
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		s, _, err = load(tx, sc, id)
		return err
	})
	return s, err
}

// Filter selects sessions. Empty fields match everything; set fields must
// all match.
type Filter struct {
	// User matches sessions the user started or joined (in person or
	// through an agent acting for them).
	User string
	// Agent matches sessions the agent started or joined.
	Agent string
	// Workspace matches the workspace root, compared after cleaning (see
	// the Workspace function).
	Workspace string
	// Project matches the sessions of one project, by id.
	Project string
	// State matches open, ended or abandoned sessions.
	State State
	// Since and Until bound the start time, inclusive; zero means open.
	Since time.Time
	Until time.Time
}

// Order of a listing.
type Order int

// Orders. The zero value lists the newest sessions first.
const (
	NewestFirst Order = iota
	OldestFirst
)

// Query is one page request.
type Query struct {
	Filter
	Order Order
	// Cursor continues a previous page: the Next it returned.
	Cursor string
	// Limit is the most sessions to return (default DefaultLimit, at most
	// MaxLimit).
	Limit int
}

// Page is one page of a listing.
type Page struct {
	Sessions []Session `json:"sessions"`
	// Next continues the listing after this page; empty when nothing more
	// matches. A page may hold fewer than Limit sessions (even none) and
	// still have a Next: each page examines at most MaxExamine records, so
	// a selective filter cannot make one transaction run long.
	Next string `json:"next,omitempty"`
}

// Listing limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	MaxExamine   = 2000
)

// validate checks and cleans a filter.
func (f Filter) validate() (Filter, error) {
	if f.State != "" {
		if _, err := ParseState(string(f.State)); err != nil {
			return f, err
		}
	}
	if f.Workspace != "" {
		ws, err := Workspace(f.Workspace)
		if err != nil {
			return f, err
		}
		// Start stores workspaces canonical (project.Canonical): a
		// symbolic link to one, or a spelling with "..", finds it too.
		if c, err := project.Canonical(ws); err == nil {
			ws = c
		}
		f.Workspace = ws
	}
	for _, v := range []struct{ name, v string }{{"user", f.User}, {"agent", f.Agent}, {"project", f.Project}} {
		if err := checkText(v.name+" filter", v.v, keyspace.MaxIDSize, true); err != nil {
			return f, err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, invalid("until %s is before since %s: swap them", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return f, nil
}

func (f Filter) match(s *Session) bool {
	if (f.State != "" && s.State != f.State) ||
		(f.Workspace != "" && s.Workspace != f.Workspace) ||
		(f.Project != "" && s.Project != f.Project) ||
		(!f.Since.IsZero() && s.Started.Before(f.Since)) ||
		(!f.Until.IsZero() && s.Started.After(f.Until)) {
		return false
	}
	if f.User == "" && f.Agent == "" {
		return true
	}
	user, agent := f.User == "", f.Agent == ""
	for _, p := range s.Participants {
		user = user || p.User == f.User
		agent = agent || (p.Agent != "" && p.Agent == f.Agent)
	}
	return user && agent
}

// walk is the range a listing reads: the session records, or the entries
// of one secondary index value.
type walk struct {
	sub     keyspace.Subspace
	indexed bool // entries name records to read
	// key returns the key of a session id (or a bound) within sub.
	key func(id string) ([]byte, error)
}

// source picks the range to walk: open sessions are few (the sweeper sees
// to that), then the narrowest participant index, then the workspace, then
// the project, then any other state, else every record.
func (f Filter) source(sc *tenant.Scope) (walk, error) {
	var index, value string
	switch {
	case f.State == Open:
		index, value = keyspace.SessionByState, string(Open)
	case f.Agent != "":
		index, value = keyspace.SessionByAgent, f.Agent
	case f.User != "":
		index, value = keyspace.SessionByUser, f.User
	case f.Workspace != "":
		index, value = keyspace.SessionByWorkspace, f.Workspace
	case f.Project != "":
		index, value = keyspace.SessionByProject, f.Project
	case f.State != "":
		index, value = keyspace.SessionByState, string(f.State)
	default:
		return walk{sub: sc.Space().Sessions(), key: sc.Space().Session}, nil
	}
	sub, err := sc.Space().SessionsBy(index, value)
	if err != nil {
		return walk{}, invalid("%s filter: %v", index, err)
	}
	return walk{sub: sub, indexed: true, key: func(id string) ([]byte, error) {
		return sc.Space().SessionsByEntry(index, value, id)
	}}, nil
}

// List returns one page of the scope's tenant's sessions matching q, newest
// first unless q.Order says otherwise. Pages are stable under concurrent
// starts: a session started after the listing began is never served twice.
func List(ctx context.Context, sc *tenant.Scope, q Query) (Page, error) {
	f, err := q.Filter.validate()
	if err != nil {
		return Page{}, err
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return Page{}, invalid("limit %d: want 1 to %d (0 for the default, %d)", q.Limit, MaxLimit, DefaultLimit)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Order != NewestFirst && q.Order != OldestFirst {
		return Page{}, invalid("order %d: want NewestFirst or OldestFirst", q.Order)
	}
	cursor := ""
	if q.Cursor != "" {
		if cursor, err = ParseID(q.Cursor); err != nil {
			return Page{}, fmt.Errorf("session: %w: %q is not a cursor this listing returned", ErrBadCursor, textclip.Clip(q.Cursor, 64))
		}
	}
	w, err := f.source(sc)
	if err != nil {
		return Page{}, err
	}
	sub, keyOf, indexed := w.sub, w.key, w.indexed
	begin, end := sub.Range()
	// Ids sort by start time: the time range is a range of ids.
	if !f.Since.IsZero() {
		b, err := keyOf(boundID(milli(f.Since)))
		if err != nil {
			return Page{}, err
		}
		if string(b) > string(begin) {
			begin = b
		}
	}
	if !f.Until.IsZero() && milli(f.Until) < maxMilli {
		e, err := keyOf(boundID(milli(f.Until) + 1))
		if err != nil {
			return Page{}, err
		}
		if string(e) < string(end) {
			end = e
		}
	}
	reverse := q.Order == NewestFirst
	if cursor != "" {
		at, err := keyOf(cursor)
		if err != nil {
			return Page{}, err
		}
		if reverse && string(at) < string(end) {
			end = at
		} else if !reverse && string(kv.KeyAfter(at)) > string(begin) {
			begin = kv.KeyAfter(at)
		}
	}
	var page Page
	err = sc.Store().View(ctx, func(tx kv.ReadTx) error {
		page = Page{}
		if string(begin) >= string(end) {
			return nil
		}
		examined, last := 0, ""
		it := tx.GetRange(begin, end, kv.RangeOptions{Reverse: reverse, Limit: MaxExamine})
		for it.Next() {
			p := it.KeyValue()
			t, err := sub.Unpack(p.Key)
			if err != nil {
				return fmt.Errorf("session: corrupt key %s: %w", kv.DisplayKey(p.Key), err)
			}
			id, ok := t[0].(string)
			if !ok || len(t) != 1 {
				return fmt.Errorf("session: corrupt key %s", kv.DisplayKey(p.Key))
			}
			examined++
			last = id
			val := p.Value
			if indexed {
				key, err := sc.Space().Session(id)
				if err != nil {
					return err
				}
				if val, err = tx.Get(key); err != nil {
					return err
				}
				if val == nil {
					continue // cannot happen: records and entries change together
				}
			}
			s, err := decode(val)
			if err != nil {
				return fmt.Errorf("session: record %s is corrupt: %w", id, err)
			}
			s.Tenant = sc.Tenant()
			if f.match(&s) {
				page.Sessions = append(page.Sessions, s)
				if len(page.Sessions) == q.Limit {
					break
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		// More may follow when the page stopped early: full, or out of
		// examination budget. An exact final hit costs one empty page.
		if len(page.Sessions) == q.Limit || examined == MaxExamine {
			page.Next = last
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}
