package proxy

// auth.go: users and permissions on the proxy (Config.Auth). The proxy is
// where they are enforced: it alone speaks the line protocol and knows
// which connection a request came on; the replicas trust every proxy, and
// with TLS only holders of a certificate of the cluster CA reach them.
// The users and roles themselves live in the replicated state
// (authstore.go), so every proxy enforces the same ones.
//
// Goroutines: AUTH, USER and ROLE requests run on their connection's
// reader goroutine, which waits for them (they are rare, and a pipeline
// must see its AUTH before its next request); the checks of every other
// request run there too, against the table of the moment. The refresher
// goroutine (authority.run) creates the bootstrap admin if asked, then
// reloads the table whenever .synod/auth/epoch changes, every Poll. The
// table is swapped atomically; the failure counters have their own lock.

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// Failed-AUTH limits: a connection is closed after maxConnAuthFails
// failures; a source address may fail addrAuthBurst times, then once per
// addrAuthRefill.
const (
	maxConnAuthFails = 5
	addrAuthBurst    = 10
	addrAuthRefill   = 3 * time.Second
	maxAuthAddrs     = 10000
	maxAdminRetries  = 5
)

// Replies the auth checks give.
const (
	msgAuthFirst   = "authenticate first: AUTH <user> <password>"
	msgBadAuth     = "invalid user name or password"
	msgAdminOnly   = "only an admin may do this"
	msgNoRead      = "no read permission"
	msgNoWrite     = "no write permission"
	msgAuthLimited = "too many failed AUTH attempts from this address; try again later"
	msgAuthOff     = "users are off on this proxy (synod proxy --auth)"
)

// authority is a Server's users and permissions.
type authority struct {
	s     *Server
	table atomic.Pointer[authTable]
	epoch atomic.Uint64 // the epoch's version the table was read at
	ready atomic.Bool   // the bootstrap admin exists and the table was read once

	wmu  sync.Mutex // one change at a time from this proxy
	sess *session   // the session of those changes, under wmu

	hashing chan struct{} // bounds concurrent password hashing (memory)

	fmu   sync.Mutex
	fails map[string]*bucket // per source address
}

// bucket counts a source address's failed AUTH attempts.
type bucket struct {
	tokens float64
	last   time.Time
}

func newAuthority(s *Server) *authority {
	a := &authority{s: s, hashing: make(chan struct{}, 2), fails: map[string]*bucket{}}
	a.table.Store(&authTable{users: map[string]userRecord{}, roles: map[string]roleRecord{}})
	return a
}

// do runs one request through the router and waits for its result.
func (a *authority) do(req wire.Request, write bool, sess *session) result {
	done := make(chan result, 1)
	o := &op{req: req, write: write, sess: sess}
	o.finish = func(r result) { done <- r }
	a.s.rt.submit(o)
	return <-done
}

func (a *authority) get(key string) result {
	return a.do(wire.Request{Op: wire.OpGet, Key: key}, false, nil)
}

// errResult turns a result that is neither OK nor NOT_FOUND into an error.
func errResult(res result) error {
	if res.abort {
		return fmt.Errorf("%s: the change may or may not be in force", line.CodeTimeout)
	}
	msg := res.rep.Msg
	if msg == "" {
		msg = "replica refused the request"
	}
	return fmt.Errorf("%s: %s", lineCode(res.rep.Code), msg)
}

// reload reads every user and role. A record that does not parse grants
// nothing and is logged.
func (a *authority) reload() error {
	st := a.do(wire.Request{Op: wire.OpStat, Key: epochKey}, false, nil)
	if st.rep.Code != wire.CodeOK && st.rep.Code != wire.CodeNotFound {
		return errResult(st)
	}
	t := &authTable{users: map[string]userRecord{}, roles: map[string]roleRecord{}}
	for _, prefix := range []string{usersPrefix, rolesPrefix} {
		ls := a.do(wire.Request{Op: wire.OpList, Key: prefix}, false, nil)
		if ls.rep.Code != wire.CodeOK {
			return errResult(ls)
		}
		for _, key := range ls.rep.Keys {
			res := a.get(key)
			if res.rep.Code == wire.CodeNotFound {
				continue
			}
			if res.rep.Code != wire.CodeOK {
				return errResult(res)
			}
			name := strings.TrimPrefix(key, prefix)
			var err error
			if prefix == usersPrefix {
				var u userRecord
				if u, err = decodeUser(res.rep.Value); err == nil {
					t.users[name] = u
				}
			} else {
				var r roleRecord
				if r, err = decodeRole(res.rep.Value); err == nil {
					t.roles[name] = r
				}
			}
			if err != nil {
				a.s.log.Error().Err(err).Str("key", key).Msg("auth record does not parse; it grants nothing")
			}
		}
	}
	a.table.Store(t)
	a.epoch.Store(st.rep.Version)
	return nil
}

// run is the refresher goroutine.
func (a *authority) run() {
	cfg := &a.s.cfg
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	boot := cfg.BootstrapAdmin != ""
	loaded := false
	for {
		select {
		case <-a.s.done:
			return
		case <-tick.C:
		}
		if boot {
			if err := a.bootstrap(cfg.BootstrapAdmin, cfg.BootstrapPassword); err != nil {
				a.s.log.Debug().Err(err).Msg("bootstrap admin: retrying")
				continue
			}
			boot = false
		}
		st := a.do(wire.Request{Op: wire.OpStat, Key: epochKey, Consistency: wire.Consistency(line.LevelStale)}, false, nil)
		if loaded && st.rep.Code == wire.CodeOK && st.rep.Version == a.epoch.Load() {
			continue
		}
		if loaded && st.rep.Code == wire.CodeNotFound && a.epoch.Load() == 0 {
			continue
		}
		if err := a.reload(); err != nil {
			a.s.log.Debug().Err(err).Msg("auth table not reloaded; retrying")
			continue
		}
		loaded = true
		a.ready.Store(true)
	}
}

// bootstrap creates the admin user unless it exists.
func (a *authority) bootstrap(name, password string) error {
	res := a.get(usersPrefix + name)
	switch res.rep.Code {
	case wire.CodeOK:
		return nil
	case wire.CodeNotFound:
	default:
		return errResult(res)
	}
	hash, err := a.hash(password)
	if err != nil {
		return err
	}
	if err := a.write(usersPrefix+name, 0, encodeUser(userRecord{Hash: hash, Roles: []string{AdminRole}})); err != nil {
		return err
	}
	if err := a.bump(); err != nil {
		return err
	}
	a.ready.Store(true)
	a.s.log.Info().Str("user", name).Msg("bootstrap admin created")
	return nil
}

func (a *authority) hash(pw string) (string, error) {
	a.hashing <- struct{}{}
	defer func() { <-a.hashing }()
	return hashPassword(pw)
}

func (a *authority) check(hash, pw string) bool {
	a.hashing <- struct{}{}
	defer func() { <-a.hashing }()
	return checkPassword(hash, pw)
}

// write stores value at key if its version is still version (0: absent),
// in the authority's session.
func (a *authority) write(key string, version uint64, value []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.sess == nil {
		a.sess = a.s.rt.newSession()
	}
	res := a.do(wire.Request{Op: wire.OpCAS, Key: key, Version: version, Value: value}, true, a.sess)
	switch {
	case res.abort:
		a.sess = nil // its next seq is unknown to be in order
		return errResult(res)
	case res.rep.Code == wire.CodeOK:
		return nil
	case res.rep.Code == wire.CodeConflict:
		return errConflict
	}
	return errResult(res)
}

// remove deletes key.
func (a *authority) remove(key string) (found bool, err error) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.sess == nil {
		a.sess = a.s.rt.newSession()
	}
	res := a.do(wire.Request{Op: wire.OpDel, Key: key}, true, a.sess)
	switch {
	case res.abort:
		a.sess = nil
		return false, errResult(res)
	case res.rep.Code == wire.CodeOK:
		return true, nil
	case res.rep.Code == wire.CodeNotFound:
		return false, nil
	}
	return false, errResult(res)
}

// bump tells every proxy the table changed, and reloads this one's.
func (a *authority) bump() error {
	a.wmu.Lock()
	if a.sess == nil {
		a.sess = a.s.rt.newSession()
	}
	res := a.do(wire.Request{Op: wire.OpPut, Key: epochKey, Value: []byte("changed\n")}, true, a.sess)
	if res.abort {
		a.sess = nil
	}
	a.wmu.Unlock()
	if res.rep.Code != wire.CodeOK {
		return errResult(res)
	}
	return a.reload()
}

var errConflict = fmt.Errorf("%s: changed concurrently; try again", line.CodeConflict)

// allowAttempt reports whether addr may try AUTH now.
func (a *authority) allowAttempt(addr string) bool {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	b := a.fails[addr]
	if b == nil {
		return true
	}
	a.refill(b)
	return b.tokens >= 1
}

func (a *authority) refill(b *bucket) {
	now := time.Now()
	b.tokens = min(addrAuthBurst, b.tokens+float64(now.Sub(b.last))/float64(addrAuthRefill))
	b.last = now
}

// failed counts a failed AUTH from addr.
func (a *authority) failed(addr string) {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	b := a.fails[addr]
	if b == nil {
		if len(a.fails) >= maxAuthAddrs {
			for k, v := range a.fails { // forget the ones that refilled
				a.refill(v)
				if v.tokens >= addrAuthBurst {
					delete(a.fails, k)
				}
			}
		}
		b = &bucket{tokens: addrAuthBurst, last: time.Now()}
		a.fails[addr] = b
	}
	a.refill(b)
	b.tokens = max(0, b.tokens-1)
}

// sourceAddr is the host of a connection's remote address.
func sourceAddr(nc net.Conn) string {
	s := nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// authReply is a call answered by the auth layer: its reply lines, or an
// error code and message.
func authReply(cl *call, code, msg string) *call {
	cl.custom = func(w *line.Writer) error { return w.Err(code, msg) }
	return cl
}

// gate runs before every request of a connection. It answers AUTH, USER
// and ROLE itself, and refuses what the connection may not do; it returns
// nil when the request goes on as usual, and whether to read on.
func (c *conn) gate(req line.Request) (*call, bool) {
	a := c.s.auth
	// The call is made only for a request answered here: the common one,
	// admitted, gets its own from handle.
	refuse := func(code, msg string) (*call, bool) {
		return authReply(&call{req: req, done: answered}, code, msg), true
	}
	if req.Cmd.IsAuth() {
		return c.authCommand(&call{req: req, done: answered})
	}
	if !c.s.cfg.Auth {
		if keyOf(req) != "" && reserved(keyOf(req)) {
			if req.Cmd.IsWrite() {
				return refuse(line.CodeNoPerm, msgNoWrite)
			}
			return refuse(line.CodeNoPerm, msgNoRead)
		}
		return nil, true
	}
	switch req.Cmd {
	case line.CmdPing, line.CmdHelp, line.CmdQuit:
		return nil, true
	}
	if c.user == "" {
		return refuse(line.CodeNoPerm, msgAuthFirst)
	}
	t := a.table.Load()
	switch {
	case req.Cmd.IsMemberChange(), req.Cmd == line.CmdSnapshot:
		// A backup holds every key, the users' hashes among them.
		if !t.isAdmin(c.user) {
			return refuse(line.CodeNoPerm, msgAdminOnly)
		}
	case req.Cmd.IsWrite():
		if reserved(req.Key) || !t.may(c.user, line.PermWrite, req.Key) {
			return refuse(line.CodeNoPerm, msgNoWrite)
		}
	case req.Cmd == line.CmdGet, req.Cmd == line.CmdGetRange, req.Cmd == line.CmdStat, req.Cmd == line.CmdWatch && !req.WatchPrefix:
		if reserved(req.Key) || !t.may(c.user, line.PermRead, req.Key) {
			return refuse(line.CodeNoPerm, msgNoRead)
		}
	}
	return nil, true
}

// keyOf is the key a request names, or LIST's prefix.
func keyOf(req line.Request) string {
	if req.Cmd == line.CmdList {
		return req.Prefix
	}
	return req.Key
}

// listFilter is what a LIST or a WATCH on this connection may show: no reserved key,
// and with auth on only the keys its user may read.
func (c *conn) listFilter() func(string) bool {
	if !c.s.cfg.Auth {
		return func(k string) bool { return !reserved(k) }
	}
	// The table is loaded per key, not once: a watch keeps its filter for
	// as long as it runs, and a revocation must reach it.
	a, user := c.s.auth, c.user
	return func(k string) bool { return !reserved(k) && a.table.Load().may(user, line.PermRead, k) }
}

// authCommand answers AUTH, USER and ROLE.
func (c *conn) authCommand(cl *call) (*call, bool) {
	a := c.s.auth
	req := cl.req
	if !c.s.cfg.Auth {
		// A proxy that checks nobody must not let anybody make users that
		// the proxies with --auth would then trust.
		return authReply(cl, line.CodeBadRequest, msgAuthOff), true
	}
	if req.Cmd == line.CmdAuth {
		return c.authenticate(cl)
	}
	t := a.table.Load()
	self := req.Cmd == line.CmdUserPasswd && req.Name == c.user && c.user != ""
	if c.user == "" {
		return authReply(cl, line.CodeNoPerm, msgAuthFirst), true
	}
	if !self && !t.isAdmin(c.user) {
		return authReply(cl, line.CodeNoPerm, msgAdminOnly), true
	}
	lines, err := a.change(req)
	if err != nil {
		code, msg, _ := strings.Cut(err.Error(), ": ")
		return authReply(cl, code, msg), true
	}
	switch req.Cmd {
	case line.CmdUserList, line.CmdRoleList:
		head := "USERS"
		if req.Cmd == line.CmdRoleList {
			head = "ROLES"
		}
		cl.custom = func(w *line.Writer) error { return w.Lines(head, lines) }
	default:
		cl.custom = func(w *line.Writer) error { return w.OK() }
	}
	return cl, true
}

// authenticate answers AUTH, within the failure limits.
func (c *conn) authenticate(cl *call) (*call, bool) {
	a := c.s.auth
	addr := sourceAddr(c.nc)
	if !a.ready.Load() {
		// Not a failure of the client's: no user could pass yet.
		return authReply(cl, line.CodeUnavailable, "users not loaded yet; try again"), true
	}
	if !a.allowAttempt(addr) {
		return authReply(cl, line.CodeBusy, msgAuthLimited), true
	}
	req := cl.req
	res := a.get(usersPrefix + req.Name)
	var u userRecord
	ok := false
	switch res.rep.Code {
	case wire.CodeOK:
		var err error
		if u, err = decodeUser(res.rep.Value); err == nil {
			ok = a.check(u.Hash, req.Password)
		}
	case wire.CodeNotFound:
		// Spend the same work as for a real user, so timing does not tell
		// which names exist.
		a.check(dummyHash(), req.Password)
	default:
		return authReply(cl, lineCode(res.rep.Code), "users unavailable: "+res.rep.Msg), true
	}
	if !ok {
		a.failed(addr)
		c.authFails++
		c.s.log.Warn().Str("remote", c.nc.RemoteAddr().String()).Int("failures", c.authFails).Msg("AUTH failed")
		if c.authFails >= maxConnAuthFails {
			cl.close = true
			authReply(cl, line.CodeNoPerm, msgBadAuth+"; closing after "+fmt.Sprint(maxConnAuthFails)+" failures")
			return cl, false
		}
		return authReply(cl, line.CodeNoPerm, msgBadAuth), true
	}
	c.user = req.Name
	if t := a.table.Load(); t.users[req.Name].Hash != u.Hash || !equalRoles(t.users[req.Name].Roles, u.Roles) {
		if err := a.reload(); err != nil {
			c.s.log.Warn().Err(err).Msg("auth table not reloaded after AUTH")
		}
	}
	cl.custom = func(w *line.Writer) error { return w.OK() }
	return cl, true
}

func equalRoles(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// dummyHash is checked against for a user that does not exist. Made on
// first use: every synod command links this package, and a hash costs.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashPassword("synod: no such user")
	if err != nil {
		return ""
	}
	return h
})

// change runs a USER or ROLE request against the replicated records. Its
// error reads "<CODE>: <message>".
func (a *authority) change(req line.Request) ([]string, error) {
	switch req.Cmd {
	case line.CmdUserList, line.CmdRoleList:
		if err := a.reload(); err != nil {
			return nil, err
		}
		t := a.table.Load()
		var out []string
		if req.Cmd == line.CmdUserList {
			for name, u := range t.users {
				roles := "-"
				if len(u.Roles) > 0 {
					roles = strings.Join(u.Roles, ",")
				}
				out = append(out, name+" roles="+roles)
			}
		} else {
			for name, r := range t.roles {
				var read, write []string
				for _, g := range r.Grants {
					if g.Perm == line.PermRead {
						read = append(read, g.Prefix)
					} else {
						write = append(write, g.Prefix)
					}
				}
				out = append(out, name+" read="+listOrDash(read)+" write="+listOrDash(write))
			}
		}
		sort.Strings(out)
		return out, nil
	case line.CmdUserAdd:
		hash, err := a.hash(req.Password)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", line.CodeInternal, err)
		}
		if err := a.write(usersPrefix+req.Name, 0, encodeUser(userRecord{Hash: hash})); err == errConflict {
			return nil, fmt.Errorf("%s: user %s exists", line.CodeConflict, req.Name)
		} else if err != nil {
			return nil, err
		}
		return nil, a.bump()
	case line.CmdUserDel, line.CmdRoleDel:
		prefix := usersPrefix
		if req.Cmd == line.CmdRoleDel {
			prefix = rolesPrefix
		} else if err := a.keepsAnAdmin(req.Name); err != nil {
			return nil, err
		}
		found, err := a.remove(prefix + req.Name)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("%s: no such %s", line.CodeNotFound, strings.ToLower(strings.Fields(req.Cmd.String())[0]))
		}
		return nil, a.bump()
	case line.CmdRoleAdd:
		if req.Name == AdminRole {
			return nil, fmt.Errorf("%s: %s is built in", line.CodeConflict, AdminRole)
		}
		if err := a.write(rolesPrefix+req.Name, 0, encodeRole(roleRecord{})); err == errConflict {
			return nil, fmt.Errorf("%s: role %s exists", line.CodeConflict, req.Name)
		} else if err != nil {
			return nil, err
		}
		return nil, a.bump()
	}
	// Read, modify, compare-and-swap; again if another change came between.
	for range maxAdminRetries {
		err := a.modify(req)
		if err != errConflict {
			if err != nil {
				return nil, err
			}
			return nil, a.bump()
		}
	}
	return nil, errConflict
}

// keepsAnAdmin refuses to delete user, or take its admin role, when it is
// the last admin: nobody could manage users again short of restarting a
// proxy with --bootstrap-admin. Two such changes racing through two
// proxies may still both pass; the bootstrap is the way back then.
func (a *authority) keepsAnAdmin(user string) error {
	if err := a.reload(); err != nil {
		return err
	}
	t := a.table.Load()
	if !t.isAdmin(user) {
		return nil
	}
	for name := range t.users {
		if name != user && t.isAdmin(name) {
			return nil
		}
	}
	return fmt.Errorf("%s: %s is the last admin: grant %s to another user first", line.CodeConflict, user, AdminRole)
}

// modify applies one USER PASSWD, GRANT, REVOKE or ROLE GRANT, REVOKE.
func (a *authority) modify(req line.Request) error {
	isUser := req.Cmd == line.CmdUserPasswd || req.Cmd == line.CmdUserGrant || req.Cmd == line.CmdUserRevoke
	key := rolesPrefix + req.Name
	if isUser {
		key = usersPrefix + req.Name
	}
	res := a.get(key)
	switch res.rep.Code {
	case wire.CodeOK:
	case wire.CodeNotFound:
		if isUser {
			return fmt.Errorf("%s: no such user", line.CodeNotFound)
		}
		return fmt.Errorf("%s: no such role", line.CodeNotFound)
	default:
		return errResult(res)
	}
	var value []byte
	if isUser {
		u, err := decodeUser(res.rep.Value)
		if err != nil {
			return fmt.Errorf("%s: %v", line.CodeInternal, err)
		}
		switch req.Cmd {
		case line.CmdUserPasswd:
			if u.Hash, err = a.hash(req.Password); err != nil {
				return fmt.Errorf("%s: %v", line.CodeInternal, err)
			}
		case line.CmdUserGrant:
			if req.Role != AdminRole {
				if r := a.get(rolesPrefix + req.Role); r.rep.Code == wire.CodeNotFound {
					return fmt.Errorf("%s: no such role", line.CodeNotFound)
				}
			}
			u = u.withRole(req.Role, true)
		case line.CmdUserRevoke:
			if req.Role == AdminRole {
				if err := a.keepsAnAdmin(req.Name); err != nil {
					return err
				}
			}
			u = u.withRole(req.Role, false)
		}
		value = encodeUser(u)
	} else {
		r, err := decodeRole(res.rep.Value)
		if err != nil {
			return fmt.Errorf("%s: %v", line.CodeInternal, err)
		}
		value = encodeRole(r.withGrants(req.Perm, req.Prefix, req.Cmd == line.CmdRoleGrant))
	}
	return a.write(key, res.rep.Version, value)
}

func listOrDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// startAuth starts the refresher when auth is on.
func (s *Server) startAuth() {
	s.auth = newAuthority(s)
	if !s.cfg.Auth {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.auth.run()
	}()
}
