package keyspace

// The session layer's secondary indexes:
//
//	("coditect", "t", tenant, "session_by", index, value, session)   empty value
//
// Session ids sort by start time, so the entries of one index value are in
// start order too: a page of "alice's sessions, newest first" is one reverse
// range read. They live beside ("session", …), not under it, so that a scan
// of the session records meets records only.

// elSessionBy is part of the on-disk format: never rename it.
const elSessionBy = "session_by"

// Index names of the session layer's secondary indexes. SessionsBy accepts
// any valid id; these are the ones storage/session maintains.
const (
	SessionByUser      = "user"      // every user who started or joined the session
	SessionByAgent     = "agent"     // every agent that started or joined the session
	SessionByWorkspace = "workspace" // the session's workspace root
	SessionByState     = "state"     // open, ended or abandoned
	SessionByProject   = "project"   // the session's project id
)

// SessionsBy is ("session_by", index, value): the sessions of one index
// value, in session id order. value may be up to MaxResourceSize bytes (a
// workspace path).
func (t TenantSpace) SessionsBy(index, value string) (Subspace, error) {
	if err := checkSessionIndex(index, value); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elSessionBy, index, value), nil
}

// SessionsByEntry is ("session_by", index, value, session): the entry that
// lists session under one index value.
func (t TenantSpace) SessionsByEntry(index, value, session string) ([]byte, error) {
	if err := checkSessionIndex(index, value); err != nil {
		return nil, err
	}
	if err := checkID("session", session, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elSessionBy, index, value, session), nil
}

func checkSessionIndex(index, value string) error {
	if err := checkID("session index", index, MaxIDSize); err != nil {
		return err
	}
	return checkID("session index value", value, MaxResourceSize)
}
