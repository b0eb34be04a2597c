// Package filestore is synod's replicated file state machine and its
// snapshot file format. (The line-oriented Paxos log and acceptor state live
// in the sibling package filestore/wal.)
//
// # Commands
//
// The Paxos log replicates opaque []byte commands. filestore defines their
// encoding as one line of text, so a log that escapes non-printable bytes
// stays readable with cat and grep:
//
//	<op> <client>.<seq>.<ack>[.r] <stamp> <key> [<version>] [<value>]
//	<op> 0 <seq> <stamp> <key> [<version>] [<value>]          (no session)
//
//	put 17.4.2 1732000000000 docs/a hello world
//	append 17.5.2 1732000000100 docs/a !
//	cas 17.6.6.r 1732000000200 docs/a 5 new text     (a retry; version 0 = must not exist)
//	del 17.7.6 1732000000300 docs/a
//	put 0 0 1732000000400 docs/b anonymous
//
// Numbers are canonical decimal (no sign on unsigned fields, no leading
// zeros); fields are separated by exactly one space. put, append and cas
// always carry the value: the raw rest of the command after one space,
// binary-safe and possibly empty. del carries none. The session field names
// the client's session, the write's place in it (seq, from 1), the client's
// acknowledgment (ack, in [1, seq]) and, with ".r", that the write is a
// retry; client 0 (no session) opts out of exactly-once and of ordering.
// stamp is the master's wall clock in milliseconds at propose time; the
// machine's clock is the largest stamp it has applied ("log-ordered time"),
// which expires idle sessions the same way on every replica.
//
// A large file's write, putfile, carries its manifest (see wire.Manifest)
// instead of its bytes, which the proxy stored as chunk files on a
// majority of replicas (package filestore/chunks) before it proposed it:
//
//	putfile 17.8.8 1732000000500 big/iso <size> <chunk-size> <sha256> <chunk sha256>,<chunk sha256>,...
//
// The machine keeps the manifest as the file's value and marks the file
// large: Stat gives the file's size, Get its manifest (IsLarge tells). An
// APPEND to a large file is refused with wire.CodeTooLarge; a PUT, CAS or
// DEL replaces it as any file.
//
// Version 1 commands, "<op> <client> <seq> <stamp> ..." with a non-zero
// client, are what logs written before sessions were ordered hold. They
// still decode (Command.Legacy) and apply by their old rule, so an old log
// replays to the state it produced; nothing writes them any more.
//
// # Sessions: in order, exactly once, whatever the clock
//
// A session is one client's stream of writes (a proxy opens one per client
// connection, with a client id it never reuses). Its writes are numbered 1,
// 2, 3 ... in the order the client means them to apply, and the machine
// applies write n of a session only if n is the session's last applied seq
// plus one:
//
//   - n = last+1 is applied, and its result remembered;
//   - n <= last is a duplicate: it is answered with the result remembered
//     for n, or wire.CodeAnswered if that was forgotten, and not applied again;
//   - n > last+1 is refused with wire.CodeOutOfOrder: not applied (it still
//     takes its command index, as a failed CAS does), and the client sends
//     it again after the writes before it.
//
// So across a failover, where slot s+1 may be chosen while slot s became a
// no-op, or a refused write is retried after a later one was accepted, the
// later write is refused rather than applied first: a session's writes
// apply in their order whatever order the log holds them in.
//
// Each write carries ack, the lowest seq whose reply its client has not
// been given yet. The replies below it are forgotten; the session keeps
// those of [ack, last], a window no larger than the client's writes in
// flight (Options.SessionWindow, 1024, bounds it whatever a client sends).
//
// Sessions are created by their first write only: a write whose session is
// not in the table is applied only if its seq is 1 and it is not marked as
// a retry; anything else is refused with wire.CodeSessionUnknown. A client marks
// a write as a retry when an earlier attempt may have been proposed (it
// had no definitive refusal of it). Sessions expire after Options.SessionTTL
// of log time without a command, and past Options.MaxSessions the least
// recently active one is evicted. Log time is made of masters' wall clocks:
// a master whose clock runs an hour ahead expires every session at once.
// That costs refusals, never a duplicate: a lost session's retries, and its
// later writes, are refused, and its client (which knows whether a write
// could have been applied) either answers "outcome unknown" or moves the
// writes that surely were not to a fresh session. Exactly-once depends on
// no clock and no table size.
//
// # Snapshots
//
// A snapshot is the file state after a given command, one file per line,
// so cat, grep and diff work on it. Every line ends with the CRC-32C
// (Castagnoli, lower-case hex, 8 digits) of the bytes before its last space:
//
//	SNAP 3 <slot> <index> <logtime> <members> <crc>
//	C <config-slot> <member>... <crc>
//	F <key> <version> <value> <crc>
//	L <key> <version> <manifest> <crc>       (format 4 only: a large file)
//	S <client> <last> <active> <replies> <crc>
//	END <files> <sessions> <body-crc> <crc>
//
// The header gives the format version (3), the Paxos slot and the number of
// commands applied, the log time and the members ("1,2,3", or "-" for
// none). An optional C line holds the configuration in force at the slot,
// as the log holds it (the commands of its config value, escaped) and the
// slot that chose it. Then come the files, keys strictly ascending, then the client
// sessions, clients strictly ascending: the last applied seq, the log time
// of the client's last command, and the remembered replies of the window,
// oldest first, ending with last's: comma-separated <code>.<index>.<version>
// (code name, the command's index, the file's version then), or "-" for
// none. The trailer counts both and carries the CRC-32C of every byte before
// it. For example, after
//
//	1: put 17.1.1 1732000000000 docs/a hello world
//	2: put 0 0 1732000000100 docs/b (empty value)
//	3: cas 17.2.1 1732000000200 docs/a 1 hi there
//
// the snapshot at slot 3 of a three-node cluster whose configuration was
// chosen at slot 1 reads
//
//	SNAP 3 3 3 1732000000200 1,2,3 6770ab14
//	C 1 c1 v\s1\s10.0.0.1:7101 v\s2\s10.0.0.2:7101 v\s3\s10.0.0.3:7101 b19a7798
//	F docs/a 3 hi\sthere 64933b5d
//	F docs/b 2 \e c817fa78
//	S 17 2 1732000000200 OK.1.1,OK.3.3 fc865d5f
//	END 2 1 478da125 8b71ee86
//
// key and value are escaped exactly as the log escapes them (wal.Escape):
// bytes 0x21..0x7e other than '\' stand for themselves; '\', space, newline,
// carriage return and tab are written \\ \s \n \r \t; any other byte is
// \xhh; an empty value is \e. So a field never holds a space or a newline. A
// reader accepts exactly this form and nothing else; any deviation, a
// missing trailer or trailing bytes is ErrCorruptSnapshot, as a
// *SnapshotError naming the line.
//
// The "3" in the header is the format version: this format never changes
// without bumping it. Format 4 is format 3 with L lines, large files whose
// value is their manifest; WriteSnapshot writes 4 only when the state holds
// a large file, so older readers refuse such a snapshot by its number. Version 2 had no C line; version 1 also differed in
// its session lines,
// "S <client> <seq> <active> <code> <index> <version>", one reply each;
// ReadSnapshot still reads it. The command encoding lives in the log: it
// only ever gains forms, and the old ones keep decoding to what they meant.
package filestore
