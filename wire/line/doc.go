// Package line implements synod's telnet-style text protocol: the request
// parser and reply writer a server uses, and the Go client the CLI and the
// bench use. It imports the standard library only; the proxy translates
// between these types and package wire's.
//
// # Requests
//
// One request per line, ended by "\n" or "\r\n". Commands are
// case-insensitive, blank lines (empty or only spaces and tabs) are skipped,
// and fields are separated by spaces. A request line holds at most
// Limits.MaxLine bytes (64 KiB) without its terminator.
//
//	PUT <key> <value>            OK <index>
//	APPEND <key> <value>         OK <index>
//	CAS <key> <version> <value>  OK <index> | ERR CONFLICT version <v>
//	DEL <key>                    OK <index> | NOT_FOUND
//	GET <key> [MIN <index>]      VALUE <len> <version>\r\n<bytes>\r\n | NOT_FOUND
//	STAT <key>                   STAT <len> <version> | NOT_FOUND
//	LIST [<prefix>]              KEYS <n>, then n lines of one key each
//	CONSISTENCY linearizable|session|stale   OK
//	STATUS                       NODES <n>, then n lines "id=.. addr=.. role=.. ballot=.. commit=.. applied=.."
//	STATS                        lines "STAT <name> <value>", then END
//	PING | QUIT | HELP           PONG | BYE (then the server closes) | help lines, then END
//	MEMBER LIST                  MEMBERS <n> <config-slot>, then n lines "id=.. addr=.. role=voter|learner"
//	MEMBER ADD <id> <host:port>  OK <config-slot>
//	MEMBER REMOVE <id>           OK <config-slot>
//	MEMBER PROMOTE <id>          OK <config-slot>
//	SNAPSHOT [<chunk-bytes>]     SNAPSHOT <index> <slot> <keys> <bytes> <digest> <replica>, then
//	                             "$<n>" blocks of the backup file, then END <size> <crc32c> (snapshot.go)
//
// The MEMBER commands (paxos/RECONFIG.md) read or change the cluster's
// configuration: LIST answers the configuration in force and the slot that
// chose it; ADD joins a replica as a learner, REMOVE takes one out, PROMOTE
// makes a learner a voter, each answered once the change is in force, with
// the slot of the new configuration. A change already in force (adding a
// member present at that address, removing a non-member, promoting a
// voter) answers OK too, so a retry is harmless. An id is a positive
// decimal number; an address is host:port (ValidMemberAddr).
//
// A <value> is either inline or a block:
//
//   - inline: everything after the single space that follows the key (or the
//     CAS version), so "PUT greeting hello world" stores "hello world" and
//     "PUT k " (one trailing space) stores the empty value, while "PUT k"
//     without the space is a BAD_REQUEST. An inline value cannot begin with
//     '$' and cannot hold "\n"; such values are sent as blocks.
//   - block: "$<n>" as the rest of the line, then exactly n raw bytes, then
//     "\r\n" (a bare "\n" is accepted too), the way Redis and memcached send
//     binary-safe data. n is decimal digits only.
//
// Keys are 1 to Limits.MaxKey (1024) bytes of printable UTF-8 without spaces
// or control characters, so '/' makes them paths.
//
// # Replies and errors
//
// Replies always end lines with "\r\n" and come strictly in request order.
// Errors are one line, "ERR <CODE> <message>". UNAVAILABLE, BUSY and TIMEOUT
// are transient (a retry is safe); BAD_REQUEST, TOO_LARGE and CONFLICT are
// permanent; INTERNAL is a bug.
//
// After an error the connection stays usable wherever the stream can be
// resynchronised: an unknown command, missing arguments, a bad key, number or
// "$<n>" header give BAD_REQUEST; a block larger than Limits.MaxValue (but at
// most Limits.MaxDiscard) is read, dropped and answered TOO_LARGE. A request
// line over Limits.MaxLine, a block over Limits.MaxDiscard, or a block not
// followed by its line terminator cannot be resynchronised: the error is
// fatal (ProtoError.Fatal) and the server answers it and closes.
package line
