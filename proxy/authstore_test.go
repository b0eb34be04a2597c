package proxy

import (
	"errors"
	"reflect"
	"testing"

	"synod/wire/line"
)

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hash, pw string
		want           bool
	}{
		{"right", h, "correct horse", true},
		{"wrong", h, "correct horse!", false},
		{"empty hash", "", "x", false},
		{"not argon2id", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x", false},
		{"memory too large", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x", false},
		{"bad base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA", "x", false},
	}
	for _, tt := range tests {
		if got := checkPassword(tt.hash, tt.pw); got != tt.want {
			t.Errorf("%s: checkPassword = %v", tt.name, got)
		}
	}
}

func TestAuthRecords(t *testing.T) {
	u := userRecord{Hash: "$argon2id$x"}.withRole("reader", true).withRole("admin", true).withRole("reader", true)
	if !reflect.DeepEqual(u.Roles, []string{"admin", "reader"}) {
		t.Fatalf("roles %v", u.Roles)
	}
	got, err := decodeUser(encodeUser(u))
	if err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("user round trip: %+v, %v", got, err)
	}
	r := roleRecord{}.withGrants(line.PermReadWrite, "b/", true).withGrants(line.PermRead, "a/", true).withGrants(line.PermWrite, "b/", false)
	want := []grant{{line.PermRead, "a/"}, {line.PermRead, "b/"}}
	if !reflect.DeepEqual(r.Grants, want) {
		t.Fatalf("grants %v", r.Grants)
	}
	gotR, err := decodeRole(encodeRole(r))
	if err != nil || !reflect.DeepEqual(gotR, r) {
		t.Fatalf("role round trip: %+v, %v", gotR, err)
	}
	for _, bad := range []string{"", "synod-user 1\n", "synod-user 2\nhash x\n", "synod-user 1\nhash x", "synod-user 1\nhash x\nrole b\nrole a\n", "synod-user 1\nrole a\n"} {
		if _, err := decodeUser([]byte(bad)); !errors.Is(err, ErrBadAuthRecord) {
			t.Errorf("decodeUser(%q): %v", bad, err)
		}
	}
	for _, bad := range []string{"synod-role 1\nreadwrite a/\n", "synod-role 1\nread bad key\n", "synod-role 1\nwrite b/\nread a/\n", "synod-role 1\nREAD a/\n"} {
		if _, err := decodeRole([]byte(bad)); !errors.Is(err, ErrBadAuthRecord) {
			t.Errorf("decodeRole(%q): %v", bad, err)
		}
	}
}

func TestAuthTableMay(t *testing.T) {
	tbl := &authTable{
		users: map[string]userRecord{"alice": {Roles: []string{"reader"}}, "root": {Roles: []string{AdminRole}}, "ghost": {Roles: []string{"gone"}}},
		roles: map[string]roleRecord{"reader": {Grants: []grant{{line.PermRead, "a/"}, {line.PermRead, "b/"}, {line.PermWrite, "b/"}}}},
	}
	tests := []struct {
		user string
		perm line.Perm
		key  string
		want bool
	}{
		{"alice", line.PermRead, "a/x", true},
		{"alice", line.PermWrite, "a/x", false},
		{"alice", line.PermWrite, "b/x", true},
		{"alice", line.PermRead, "c/x", false},
		{"root", line.PermWrite, "c/x", true},
		{"ghost", line.PermRead, "a/x", false},
		{"nobody", line.PermRead, "a/x", false},
	}
	for _, tt := range tests {
		if got := tbl.may(tt.user, tt.perm, tt.key); got != tt.want {
			t.Errorf("may(%s, %v, %s) = %v", tt.user, tt.perm, tt.key, got)
		}
	}
}

// FuzzAuthRecords: a record read from the replicated state never panics the
// parser, and one it accepts encodes back to the same bytes.
func FuzzAuthRecords(f *testing.F) {
	f.Add([]byte("synod-user 1\nhash $argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\nrole admin\nrole reader\n"))
	f.Add([]byte("synod-role 1\nread *\nread a/\nwrite a/\n"))
	f.Add([]byte("synod-role 1\nwrite b/\nread a/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if u, err := decodeUser(data); err == nil && string(encodeUser(u)) != string(data) {
			t.Fatalf("user %q re-encodes to %q", data, encodeUser(u))
		}
		if r, err := decodeRole(data); err == nil && string(encodeRole(r)) != string(data) {
			t.Fatalf("role %q re-encodes to %q", data, encodeRole(r))
		}
		checkPassword(string(data), "pw") // must not panic or allocate without bound
	})
}

// TestAuthAddressLimit: a source address may fail addrAuthBurst times, then
// waits for the bucket to refill; another address is not affected.
func TestAuthAddressLimit(t *testing.T) {
	a := &authority{fails: map[string]*bucket{}}
	for i := range addrAuthBurst {
		if !a.allowAttempt("10.0.0.1") {
			t.Fatalf("attempt %d refused", i)
		}
		a.failed("10.0.0.1")
	}
	if a.allowAttempt("10.0.0.1") {
		t.Fatalf("attempt %d allowed", addrAuthBurst+1)
	}
	if !a.allowAttempt("10.0.0.2") {
		t.Fatal("another address refused")
	}
	// One refill period later (moved back, not waited for), one more try.
	a.fails["10.0.0.1"].last = a.fails["10.0.0.1"].last.Add(-addrAuthRefill)
	if !a.allowAttempt("10.0.0.1") {
		t.Fatal("no attempt after a refill period")
	}
	a.failed("10.0.0.1")
	if a.allowAttempt("10.0.0.1") {
		t.Fatal("two attempts after one refill period")
	}
}
