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
//	<op> <client> <seq> <stamp> <key> [<version>] [<value>]
//
//	put 17 4 1732000000000 docs/a hello world
//	append 17 5 1732000000100 docs/a !
//	cas 17 6 1732000000200 docs/a 5 new text      (version 0 = must not exist)
//	del 17 7 1732000000300 docs/a
//
// Numbers are canonical decimal (no sign on unsigned fields, no leading
// zeros); fields are separated by exactly one space. put, append and cas
// always carry the value: the raw rest of the command after one space,
// binary-safe and possibly empty. del carries none. client 0 opts out of
// exactly-once deduplication. stamp is the master's wall clock in
// milliseconds at propose time; the machine's clock is the largest stamp it
// has applied ("log-ordered time"), so session expiry is the same on every
// replica.
//
// # Snapshots
//
// A snapshot is the file state after a given command, one file per line,
// so cat, grep and diff work on it. Every line ends with the CRC-32C
// (Castagnoli, lower-case hex, 8 digits) of the bytes before its last space:
//
//	SNAP 1 <slot> <index> <logtime> <members> <crc>
//	F <key> <version> <value> <crc>
//	S <client> <seq> <active> <code> <index> <version> <crc>
//	END <files> <sessions> <body-crc> <crc>
//
// The header gives the format version (1), the Paxos slot and the number of
// commands applied, the log time and the members ("1,2,3", or "-" for
// none). Then come the files, keys strictly ascending, then the client
// sessions, clients strictly ascending: the last seq, the log time of the
// client's last command, and the remembered result (code name, index,
// version). The trailer counts both and carries the CRC-32C of every byte
// before it. For example, after
//
//	1: put 17 1 1732000000000 docs/a hello world
//	2: put 0 0 1732000000100 docs/b (empty value)
//	3: cas 17 2 1732000000200 docs/a 1 hi there
//
// the snapshot at slot 3 of a three-node cluster reads
//
//	SNAP 1 3 3 1732000000200 1,2,3 3b193c2e
//	F docs/a 3 hi\sthere 64933b5d
//	F docs/b 2 \e c817fa78
//	S 17 2 1732000000200 OK 3 3 24c07d7b
//	END 2 1 84ce9a57 6ae60308
//
// key and value are escaped exactly as the log escapes them (wal.Escape):
// bytes 0x21..0x7e other than '\' stand for themselves; '\', space, newline,
// carriage return and tab are written \\ \s \n \r \t; any other byte is
// \xhh; an empty value is \e. So a field never holds a space or a newline. A
// reader accepts exactly this form and nothing else; any deviation, a
// missing trailer or trailing bytes is ErrCorruptSnapshot naming the line.
//
// The "1" in the header is the format version: this format never changes
// without bumping it. The command encoding lives in the log, and never
// changes without bumping the log's format version.
package filestore
