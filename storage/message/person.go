package message

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/keyspace"
	"github.com/coditect/coditect/storage/kv"
	"github.com/coditect/coditect/storage/tenant"
)

// People's inboxes. A person (a user of the tenant) has an inbox like an
// agent's, in the same keys with the owner element "user:" + user id
// (agent ids are "ag_…", so the two never meet). A scope that acts as no
// agent reads and acknowledges its user's inbox, and no one else's: a
// person's inbox is private to that user, admins included (the audit log
// shows every send's subject and recipients, never its body).

// userPrefix starts a person's inbox owner and address.
const userPrefix = "user:"

// maxUserID is the longest user id whose inbox key fits the keyspace.
const maxUserID = keyspace.MaxIDSize - len(userPrefix)

// userInbox is the inbox owner of user id.
func userInbox(id string) string { return userPrefix + id }

// personInbox is the inbox owner of the scope's user.
func personInbox(user string) (string, error) {
	if user == "" {
		return "", invalid("the scope names no user and acts as no agent: it has no inbox")
	}
	if len(user) > maxUserID {
		return "", invalid("user id of %d bytes is longer than the %d an inbox allows", len(user), maxUserID)
	}
	return userInbox(user), nil
}

// describe names an inbox owner for messages: "agent ag_…" or "user bob".
func describe(owner string) string {
	if id, ok := strings.CutPrefix(owner, userPrefix); ok {
		return "user " + id
	}
	return "agent " + owner
}

// userExists checks, inside a transaction, that user id is an enabled user
// of the scope's tenant.
func userExists(tx kv.ReadTx, sc *tenant.Scope, id string) error {
	key, err := sc.Space().User(id)
	if err != nil {
		return invalid("to.user: %v", err)
	}
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("message: %w: tenant %s has no user %q", ErrNoUser, sc.Tenant(), textclip.Clip(id, 80))
	}
	var u tenant.User
	if err := json.Unmarshal(v, &u); err != nil {
		return fmt.Errorf("message: corrupt record of user %q: %w", textclip.Clip(id, 80), err)
	}
	if u.Disabled {
		return fmt.Errorf("message: %w: user %q is disabled", ErrNoUser, textclip.Clip(id, 80))
	}
	return nil
}

// person resolves the NAME of an address "user:NAME": a user id of the
// scope's tenant, or else the display name of exactly one of its enabled
// users (case-insensitive).
func person(ctx context.Context, sc *tenant.Scope, name string) (To, error) {
	if name == "" {
		return To{}, invalid("to %q names no person: send user:NAME with a user id or name", userPrefix)
	}
	users, err := sc.Users(ctx)
	if err != nil {
		return To{}, err
	}
	var ids []string
	for _, u := range users {
		if u.ID == name && !u.Disabled {
			return To{User: u.ID}, nil
		}
		if !u.Disabled && u.Name != "" && strings.EqualFold(u.Name, name) {
			ids = append(ids, u.ID)
		}
	}
	switch len(ids) {
	case 1:
		return To{User: ids[0]}, nil
	case 0:
		return To{}, fmt.Errorf("message: %w: no enabled user of tenant %s has the id or name %q", ErrNoUser, sc.Tenant(), textclip.Clip(name, 80))
	}
	return To{}, invalid("%d users are named %q (%s): send user: and one of their ids", len(ids), textclip.Clip(name, 80), strings.Join(ids, ", "))
}
