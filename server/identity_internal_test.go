package server

import (
	"errors"
	"os/user"
	"testing"
)

// TestOSUser: the one rule naming the OS user, for the CLI and the stdio
// modes alike: the account's name without a Windows DOMAIN\, else $USER,
// else $USERNAME, else "local".
func TestOSUser(t *testing.T) {
	noAccount := func() (*user.User, error) { return nil, errors.New("no such account") }
	account := func(name string) func() (*user.User, error) {
		return func() (*user.User, error) { return &user.User{Username: name}, nil }
	}
	for _, c := range []struct {
		name    string
		current func() (*user.User, error)
		env     map[string]string
		want    string
	}{
		{"account", account("ada"), map[string]string{"USER": "bob", "USERNAME": "carol"}, "ada"},
		{"windows account", account(`ACME\ada`), nil, "ada"},
		{"nested domain", account(`ACME\EU\ada`), nil, "ada"},
		{"USER", noAccount, map[string]string{"USER": "bob", "USERNAME": "carol"}, "bob"},
		{"USERNAME", noAccount, map[string]string{"USERNAME": "carol"}, "carol"},
		{"USERNAME with a domain", noAccount, map[string]string{"USERNAME": `ACME\carol`}, "carol"},
		{"account without a name", account(""), map[string]string{"USER": "bob"}, "bob"},
		{"domain alone", account(`ACME\`), map[string]string{"USERNAME": "carol"}, "carol"},
		{"nothing", noAccount, nil, "local"},
		{"empty everything", account(""), map[string]string{"USER": "", "USERNAME": ""}, "local"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := osUser(c.current, func(k string) string { return c.env[k] }); got != c.want {
				t.Errorf("osUser = %q, want %q", got, c.want)
			}
		})
	}
}
