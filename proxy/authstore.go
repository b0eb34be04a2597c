package proxy

// authstore.go: how users and roles are kept in the replicated state, and
// how passwords are hashed. Pure functions, called from whichever goroutine
// needs them (a connection's reader, the auth refresher).
//
// The users and roles are ordinary files under the reserved prefix
// .synod/auth/, written through the log like any other, so every replica
// and every proxy agrees on them and snapshots (format 3, unchanged) carry
// them. The proxy never lets a client read, write or list a key under
// .synod/ (authPrefix): they are reached only through AUTH, USER and ROLE.
//
//	.synod/auth/epoch          bumped after every change, polled by proxies
//	.synod/auth/users/<name>   "synod-user 1", "hash <argon2id PHC string>", then "role <name>" lines
//	.synod/auth/roles/<name>   "synod-role 1", then "read <prefix>" / "write <prefix>" lines
//
// A prefix is written as in ROLE GRANT: a key's beginning, or * for every
// key. Lines end in "\n"; a record that does not parse is an error naming
// the key, and that user or role grants nothing.

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/argon2"

	"synod/wire/line"
)

const (
	reservedPrefix = ".synod/"
	authPrefix     = ".synod/auth/"
	usersPrefix    = authPrefix + "users/"
	rolesPrefix    = authPrefix + "roles/"
	epochKey       = authPrefix + "epoch"

	// AdminRole may do everything: every key, USER, ROLE and MEMBER
	// changes. It is built in: it need not exist as a record.
	AdminRole = "admin"
)

// ErrBadAuthRecord is returned for a user or role record that does not
// parse.
var ErrBadAuthRecord = errors.New("proxy: bad auth record")

// Argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane), so a
// guess costs tens of milliseconds and a burst of AUTHs little memory.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// hashPassword returns pw's argon2id hash in the PHC string format.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("proxy: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword reports whether pw matches hash (a PHC argon2id string).
// A malformed hash, or parameters out of bounds, match nothing.
func checkPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); n != 3 || err != nil {
		return false
	}
	// Bounds, so a planted record cannot make AUTH allocate gigabytes.
	if m < 8 || m > 256*1024 || t < 1 || t > 16 || p < 1 || p > 16 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return false
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// userRecord is one user.
type userRecord struct {
	Hash  string
	Roles []string // sorted, no duplicates
}

// grant is one permission of a role.
type grant struct {
	Perm   line.Perm // PermRead or PermWrite
	Prefix string    // line.AllKeys for every key
}

// roleRecord is one role.
type roleRecord struct {
	Grants []grant // sorted, no duplicates
}

func encodeUser(u userRecord) []byte {
	var b bytes.Buffer
	b.WriteString("synod-user 1\nhash ")
	b.WriteString(u.Hash)
	b.WriteByte('\n')
	for _, r := range u.Roles {
		b.WriteString("role ")
		b.WriteString(r)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// recordLines splits a record into its lines after checking its header.
func recordLines(data []byte, header string) ([]string, error) {
	s := string(data)
	if !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("%w: no final newline", ErrBadAuthRecord)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if lines[0] != header {
		return nil, fmt.Errorf("%w: header %.32q, want %q", ErrBadAuthRecord, lines[0], header)
	}
	return lines[1:], nil
}

// decodeUser parses a user record.
func decodeUser(data []byte) (userRecord, error) {
	lines, err := recordLines(data, "synod-user 1")
	if err != nil {
		return userRecord{}, err
	}
	var u userRecord
	for i, l := range lines {
		word, arg, ok := strings.Cut(l, " ")
		switch {
		case ok && word == "hash" && i == 0 && arg != "":
			u.Hash = arg
		case ok && word == "role" && i > 0 && line.ValidName(arg):
			if len(u.Roles) > 0 && u.Roles[len(u.Roles)-1] >= arg {
				return userRecord{}, fmt.Errorf("%w: line %d: roles out of order", ErrBadAuthRecord, i+2)
			}
			u.Roles = append(u.Roles, arg)
		default:
			return userRecord{}, fmt.Errorf("%w: line %d: %.64q", ErrBadAuthRecord, i+2, l)
		}
	}
	if u.Hash == "" {
		return userRecord{}, fmt.Errorf("%w: no hash", ErrBadAuthRecord)
	}
	return u, nil
}

func encodeRole(r roleRecord) []byte {
	var b bytes.Buffer
	b.WriteString("synod-role 1\n")
	for _, g := range r.Grants {
		b.WriteString(g.Perm.String())
		b.WriteByte(' ')
		b.WriteString(g.Prefix)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func compareGrants(a, b grant) int {
	if c := strings.Compare(a.Prefix, b.Prefix); c != 0 {
		return c
	}
	return int(a.Perm) - int(b.Perm)
}

// decodeRole parses a role record.
func decodeRole(data []byte) (roleRecord, error) {
	lines, err := recordLines(data, "synod-role 1")
	if err != nil {
		return roleRecord{}, err
	}
	var r roleRecord
	for i, l := range lines {
		word, prefix, ok := strings.Cut(l, " ")
		p, pok := line.ParsePerm(word)
		if !ok || !pok || p == line.PermReadWrite || word != p.String() || (prefix != line.AllKeys && !line.ValidKey(prefix, 0)) {
			return roleRecord{}, fmt.Errorf("%w: line %d: %.64q", ErrBadAuthRecord, i+2, l)
		}
		g := grant{Perm: p, Prefix: prefix}
		if len(r.Grants) > 0 && compareGrants(r.Grants[len(r.Grants)-1], g) >= 0 {
			return roleRecord{}, fmt.Errorf("%w: line %d: grants out of order", ErrBadAuthRecord, i+2)
		}
		r.Grants = append(r.Grants, g)
	}
	return r, nil
}

// withGrants returns r with perm on prefix added (add) or taken away.
func (r roleRecord) withGrants(perm line.Perm, prefix string, add bool) roleRecord {
	out := roleRecord{Grants: slices.Clone(r.Grants)}
	for _, p := range []line.Perm{line.PermRead, line.PermWrite} {
		if perm&p == 0 {
			continue
		}
		g := grant{Perm: p, Prefix: prefix}
		i, found := slices.BinarySearchFunc(out.Grants, g, compareGrants)
		switch {
		case add && !found:
			out.Grants = slices.Insert(out.Grants, i, g)
		case !add && found:
			out.Grants = slices.Delete(out.Grants, i, i+1)
		}
	}
	return out
}

// withRole returns u with role added or taken away.
func (u userRecord) withRole(role string, add bool) userRecord {
	out := userRecord{Hash: u.Hash, Roles: slices.Clone(u.Roles)}
	i, found := slices.BinarySearch(out.Roles, role)
	switch {
	case add && !found:
		out.Roles = slices.Insert(out.Roles, i, role)
	case !add && found:
		out.Roles = slices.Delete(out.Roles, i, i+1)
	}
	return out
}

// authTable is every user and role, as one proxy last read them. Never
// changed once built; replaced whole.
type authTable struct {
	users map[string]userRecord
	roles map[string]roleRecord
}

// may reports whether user may do perm on key.
func (t *authTable) may(user string, perm line.Perm, key string) bool {
	u, ok := t.users[user]
	if !ok {
		return false
	}
	for _, rn := range u.Roles {
		if rn == AdminRole {
			return true
		}
		for _, g := range t.roles[rn].Grants {
			if g.Perm == perm && (g.Prefix == line.AllKeys || strings.HasPrefix(key, g.Prefix)) {
				return true
			}
		}
	}
	return false
}

// isAdmin reports whether user has the admin role.
func (t *authTable) isAdmin(user string) bool {
	u, ok := t.users[user]
	return ok && slices.Contains(u.Roles, AdminRole)
}

// reserved reports whether key lies under the prefix no client may touch.
func reserved(key string) bool { return strings.HasPrefix(key, reservedPrefix) }
