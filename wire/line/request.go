package line

// This file owns the request vocabulary: commands, consistency levels,
// Request, the key and member address checks, and AppendRequest, which
// encodes a request as the client sends it. Pure: the caller's goroutine.

import (
	"fmt"
	"net"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Cmd is a request's command.
type Cmd uint8

// Commands. The zero Cmd is invalid so that a forgotten field shows.
const (
	CmdPut Cmd = iota + 1
	CmdAppend
	CmdCAS
	CmdDel
	CmdGet
	CmdStat
	CmdList
	CmdConsistency
	CmdStatus
	CmdStats
	CmdPing
	CmdQuit
	CmdHelp
	// Membership (paxos/RECONFIG.md): two words on the wire, "MEMBER"
	// and the sub-command.
	CmdMemberList
	CmdMemberAdd
	CmdMemberRemove
	CmdMemberPromote
	// CmdSnapshot asks for an online backup, answered with a stream
	// (snapshot.go): a client sends it with Client.Snapshot, not Do or
	// Send, which read one reply.
	CmdSnapshot
	// CmdWatch starts a watch and CmdUnwatch ends one (watch.go): the
	// connection then carries the watch's stream between its replies.
	CmdWatch
	CmdUnwatch
	// CmdPutFile uploads a large file: "PUTFILE <key> <size> <sha256>",
	// then exactly size raw bytes and "\r\n" (file.go). The server reads
	// the bytes in pieces: the Reader hands them over with Body.
	CmdPutFile
	// CmdGetRange reads a piece of a file: "GET <key> [MIN <index>] RANGE
	// <offset> <length>", answered with RANGE (file.go).
	CmdGetRange

	// cmdCore ends the commands of this file: the auth commands
	// (auth.go) number from it, so no two commands share a value.
	cmdCore
)

var cmdNames = [...]string{
	CmdPut:         "PUT",
	CmdAppend:      "APPEND",
	CmdCAS:         "CAS",
	CmdDel:         "DEL",
	CmdGet:         "GET",
	CmdStat:        "STAT",
	CmdList:        "LIST",
	CmdConsistency: "CONSISTENCY",
	CmdStatus:      "STATUS",
	CmdStats:       "STATS",
	CmdPing:        "PING",
	CmdQuit:        "QUIT",
	CmdHelp:        "HELP",

	CmdMemberList:    "MEMBER LIST",
	CmdMemberAdd:     "MEMBER ADD",
	CmdMemberRemove:  "MEMBER REMOVE",
	CmdMemberPromote: "MEMBER PROMOTE",
	CmdSnapshot:      "SNAPSHOT",
	CmdWatch:         "WATCH",
	CmdUnwatch:       "UNWATCH",
	CmdPutFile:       "PUTFILE",
	CmdGetRange:      "GET RANGE",
}

// longestCmd bounds the token lookupCmd upper-cases.
const longestCmd = len("CONSISTENCY")

// String returns the protocol verb of c, or "UNKNOWN".
func (c Cmd) String() string {
	if name, ok := authCmdNames[c]; ok {
		return name
	}
	if c == 0 || int(c) >= len(cmdNames) {
		return "UNKNOWN"
	}
	return cmdNames[c]
}

// IsWrite reports whether c changes state (PUT, APPEND, CAS, DEL, PUTFILE).
func (c Cmd) IsWrite() bool { return c >= CmdPut && c <= CmdDel || c == CmdPutFile }

// IsMember reports whether c is one of the MEMBER commands.
func (c Cmd) IsMember() bool { return c >= CmdMemberList && c <= CmdMemberPromote }

// IsMemberChange reports whether c changes the membership (MEMBER ADD,
// REMOVE, PROMOTE).
func (c Cmd) IsMemberChange() bool { return c >= CmdMemberAdd && c <= CmdMemberPromote }

// hasValue reports whether c carries a value.
func (c Cmd) hasValue() bool { return c == CmdPut || c == CmdAppend || c == CmdCAS }

// hasKey reports whether c names one key.
func (c Cmd) hasKey() bool { return c >= CmdPut && c <= CmdStat }

// lookupMemberCmd returns the MEMBER sub-command tok names, ignoring case,
// or 0.
func lookupMemberCmd(tok []byte) Cmd {
	for _, c := range []Cmd{CmdMemberList, CmdMemberAdd, CmdMemberRemove, CmdMemberPromote} {
		if equalFold(tok, c.String()[len("MEMBER "):]) {
			return c
		}
	}
	return 0
}

// lookupCmd returns the command tok names, ignoring case, or 0. MEMBER is
// not among them: it takes a sub-command (lookupMemberCmd).
func lookupCmd(tok []byte) Cmd {
	if len(tok) > longestCmd {
		return 0
	}
	var up [longestCmd]byte
	for i, c := range tok {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	switch string(up[:len(tok)]) {
	case "PUT":
		return CmdPut
	case "APPEND":
		return CmdAppend
	case "CAS":
		return CmdCAS
	case "DEL":
		return CmdDel
	case "GET":
		return CmdGet
	case "STAT":
		return CmdStat
	case "LIST":
		return CmdList
	case "CONSISTENCY":
		return CmdConsistency
	case "STATUS":
		return CmdStatus
	case "STATS":
		return CmdStats
	case "PING":
		return CmdPing
	case "QUIT":
		return CmdQuit
	case "HELP":
		return CmdHelp
	case "SNAPSHOT":
		return CmdSnapshot
	case "WATCH":
		return CmdWatch
	case "UNWATCH":
		return CmdUnwatch
	case "PUTFILE":
		return CmdPutFile
	}
	return 0
}

// Level is a read consistency level, chosen per connection with CONSISTENCY.
// The values match wire.Consistency.
type Level uint8

// Read consistency levels (DESIGN.md, "Reads").
const (
	// LevelLinearizable reads confirm a read index with the master (the default).
	LevelLinearizable Level = iota
	// LevelSession reads wait until the replica applied the client's last write.
	LevelSession
	// LevelStale reads answer from any replica at once.
	LevelStale
)

// String returns the protocol name of l.
func (l Level) String() string {
	switch l {
	case LevelLinearizable:
		return "linearizable"
	case LevelSession:
		return "session"
	case LevelStale:
		return "stale"
	}
	return "unknown"
}

// ParseLevel returns the level named s, ignoring case.
func ParseLevel(s string) (Level, error) {
	if l, ok := lookupLevel([]byte(s)); ok {
		return l, nil
	}
	return 0, fmt.Errorf("line: unknown consistency level %q (want linearizable, session or stale): %w", s, ErrBadRequest)
}

func lookupLevel(tok []byte) (Level, bool) {
	for _, l := range []Level{LevelLinearizable, LevelSession, LevelStale} {
		if equalFold(tok, l.String()) {
			return l, true
		}
	}
	return 0, false
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Request is one parsed client request. Fields a command does not use are zero.
type Request struct {
	Cmd      Cmd
	Key      string // PUT, APPEND, CAS, DEL, GET, STAT
	Value    []byte // PUT, APPEND, CAS; never nil for them, even when empty
	Version  uint64 // CAS: expected version, 0 = must not exist
	MinIndex uint64 // GET ... MIN <index>: answer only once applied this far; 0 = no bound
	Prefix   string // LIST: "" lists every key
	Level    Level  // CONSISTENCY
	// MemberID is the member MEMBER ADD, REMOVE and PROMOTE name (never 0);
	// MemberAddr the address MEMBER ADD gives it (see ValidMemberAddr).
	MemberID   uint64
	MemberAddr string
	// Chunk is the bytes per piece of a SNAPSHOT stream, within
	// MinSnapshotChunk and MaxSnapshotChunk; 0 leaves it to the server.
	Chunk uint64
	// Name is the user or role of AUTH, USER and ROLE requests (see
	// auth.go); Password the password of AUTH, USER ADD and USER PASSWD;
	// Role the role USER GRANT and REVOKE name; Perm what ROLE GRANT and
	// REVOKE give or take on Prefix (AllKeys: every key).
	Name     string
	Password string
	Role     string
	Perm     Perm
	// WATCH: Key is the key watched, or with WatchPrefix the prefix ("":
	// every key); From the first index wanted (0: from now); Prev asks
	// for each change's previous value. UNWATCH: WatchID.
	WatchPrefix bool
	From        uint64
	Prev        bool
	WatchID     uint64
	// Size and Sum are the length and the SHA-256 (64 lowercase hex
	// digits) of the file PUTFILE uploads; Offset and Length the range
	// GET ... RANGE reads.
	Size           uint64
	Sum            string
	Offset, Length uint64
	// CAS makes a PUTFILE conditional: "PUTFILE ... VERSION <v>" stores
	// the file only if it is at Version (0: must not exist).
	CAS bool
}

// MaxMemberAddr is the longest member address in bytes.
const MaxMemberAddr = 255

// ValidMemberAddr reports whether addr can be a member's address: host:port
// with a non-empty host and a decimal port in 1..65535, at most
// MaxMemberAddr bytes of printable UTF-8 without spaces.
func ValidMemberAddr(addr string) bool {
	if len(addr) == 0 || len(addr) > MaxMemberAddr || !validKeyChars(addr) {
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	p, ok := parseUint([]byte(port))
	return ok && p >= 1 && p <= 65535
}

// ValidKey reports whether key is 1 to maxKey bytes of printable UTF-8
// without spaces or control characters. maxKey <= 0 means DefaultMaxKey.
func ValidKey(key string, maxKey int) bool {
	if maxKey <= 0 {
		maxKey = DefaultMaxKey
	}
	return len(key) > 0 && len(key) <= maxKey && validKeyChars(key)
}

// validKeyChars reports whether every rune of s is printable and not a space.
func validKeyChars(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			// IsPrint excludes every space but U+0020, which the ASCII path refused.
			return false
		}
		i += size
	}
	return true
}

// AppendRequest appends the wire form of req to dst, with any value sent as a
// binary-safe "$<n>" block, and returns the extended slice. It refuses, with
// an error matching ErrBadRequest, a request no server would accept: an
// unknown command, an invalid key or prefix (also ErrInvalidKey) or level,
// a member id 0 or a member address ValidMemberAddr refuses.
func AppendRequest(dst []byte, req Request) ([]byte, error) {
	if req.Cmd.IsAuth() {
		return appendAuthRequest(dst, req)
	}
	if req.Cmd == CmdPutFile || req.Cmd == CmdGetRange {
		return appendFileRequest(dst, req)
	}
	name := req.Cmd.String()
	if name == "UNKNOWN" {
		return dst, fmt.Errorf("line: encode: unknown command %d: %w", req.Cmd, ErrBadRequest)
	}
	if req.Cmd.hasKey() && !ValidKey(req.Key, 0) {
		return dst, fmt.Errorf("line: encode %s: key %.64q: %w: %w", name, req.Key, ErrBadRequest, ErrInvalidKey)
	}
	if req.Cmd == CmdList && req.Prefix != "" && !ValidKey(req.Prefix, 0) {
		return dst, fmt.Errorf("line: encode LIST: prefix %.64q: %w: %w", req.Prefix, ErrBadRequest, ErrInvalidKey)
	}
	if req.Cmd == CmdConsistency && req.Level > LevelStale {
		return dst, fmt.Errorf("line: encode: unknown consistency level %d: %w", req.Level, ErrBadRequest)
	}
	if req.Cmd.IsMemberChange() && req.MemberID == 0 {
		return dst, fmt.Errorf("line: encode %s: member id 0: %w", name, ErrBadRequest)
	}
	if req.Cmd == CmdMemberAdd && !ValidMemberAddr(req.MemberAddr) {
		return dst, fmt.Errorf("line: encode %s: address %.64q is not host:port: %w", name, req.MemberAddr, ErrBadRequest)
	}
	if req.Cmd == CmdWatch || req.Cmd == CmdUnwatch {
		return appendWatchRequest(dst, req)
	}
	if req.Cmd == CmdSnapshot && req.Chunk != 0 && (req.Chunk < MinSnapshotChunk || req.Chunk > MaxSnapshotChunk) {
		return dst, fmt.Errorf("line: encode SNAPSHOT: chunk of %d bytes, want %d to %d: %w", req.Chunk, MinSnapshotChunk, MaxSnapshotChunk, ErrBadRequest)
	}
	dst = append(dst, name...)
	if req.Cmd.hasKey() {
		dst = append(dst, ' ')
		dst = append(dst, req.Key...)
	}
	switch req.Cmd {
	case CmdCAS:
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, req.Version, 10)
	case CmdGet:
		if req.MinIndex > 0 {
			dst = append(dst, " MIN "...)
			dst = strconv.AppendUint(dst, req.MinIndex, 10)
		}
	case CmdList:
		if req.Prefix != "" {
			dst = append(dst, ' ')
			dst = append(dst, req.Prefix...)
		}
	case CmdConsistency:
		dst = append(dst, ' ')
		dst = append(dst, req.Level.String()...)
	}
	if req.Cmd.IsMemberChange() {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, req.MemberID, 10)
	}
	if req.Cmd == CmdMemberAdd {
		dst = append(dst, ' ')
		dst = append(dst, req.MemberAddr...)
	}
	if req.Cmd == CmdSnapshot && req.Chunk != 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, req.Chunk, 10)
	}
	if req.Cmd.hasValue() {
		dst = append(dst, " $"...)
		dst = strconv.AppendUint(dst, uint64(len(req.Value)), 10)
		dst = append(dst, "\r\n"...)
		dst = append(dst, req.Value...)
	}
	return append(dst, "\r\n"...), nil
}
