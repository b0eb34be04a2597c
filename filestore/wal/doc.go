// Package wal keeps a Paxos acceptor's durable state in plain text files
// that cat, grep and tail -f can read: the log of accepted values, the
// promised ballot (the acceptor file) and the directory's IDENTITY.
//
// A data directory looks like this; Open takes the log directory itself,
// the other helpers take the data directory:
//
//	<dir>/IDENTITY                       cluster id and node id (CreateIdentity, CheckIdentity)
//	<dir>/acceptor                       the promised ballot and membership (WriteAcceptor, ReadAcceptor)
//	<dir>/log/SEGMENTS                   the segments the log holds (Open keeps it)
//	<dir>/log/00000000000000000042.log   log segments (Open)
//
// # Log format, version 1
//
// The log is a sequence of segment files named by the slot of their first
// record, zero-padded to 20 digits so that ls lists them in write order
// (where slots go backwards, the name is raised to sort after the previous
// segment). A segment is a version line followed by batches; a batch is a
// header line followed by record lines. Every line ends with the CRC-32C
// (Castagnoli) of the bytes before its last space:
//
//	segment = "synod-wal 1" LF *batch
//	batch   = header 1*record             ; one Append, one write, one fsync
//	header  = "B" SP nlines SP nbytes SP bodycrc SP crc LF
//	record  = accept / commit
//	accept  = "A" SP slot SP ballot SP value SP count *(SP cmd) SP crc LF
//	commit  = "C" SP slot SP crc LF         ; slots <= slot are chosen, values here are the chosen ones
//	ballot  = round "." node
//	value   = "cmds" / "noop" / "config"    ; "noop" has count 0
//	cmd     = "\e" / 1*(lit / esc)          ; "\e" is the empty command
//	lit     = %x21-5B / %x5D-7E             ; printable ASCII except backslash, as is
//	esc     = "\\" / "\s" / "\n" / "\r" / "\t" / "\x" 2hexdig   ; \s is space; \x for every other byte
//	nlines, nbytes, slot, round, node, count = decimal uint64 without leading zeros
//	bodycrc = crc = 8 lower-case hex digits
//
// nlines counts the record lines of the batch, nbytes their bytes (newlines
// included) and bodycrc is their CRC-32C. Fields are separated by exactly
// one space; every encoding is canonical, so a line parses only if it
// re-encodes to the same bytes. An example segment of one batch (its lines
// are not indented on disk):
//
//	synod-wal 1
//	B 4 167 1e7472d2 0f7e87b3
//	A 42 7.2 cmds 2 put\s17\s4\s0\sdocs/a\shello\sworld del\s17\s5\s0\sdocs/b cf9d91ff
//	A 43 7.2 noop 0 e4f3e2c8
//	A 44 7.2 cmds 2 \e \x00\x01\xff\t\\ b61bbdca
//	C 43 4dd0af17
//
// This format never changes without bumping the number in the version
// line; a segment of another version is refused with ErrVersion.
//
// # Durability and recovery
//
// Append writes a whole batch with one write and one fsync before it
// returns, and the next batch starts only after that fsync. So only the
// last batch of the last segment can be the torn tail of an interrupted
// write, and it was never acknowledged: Open cuts it off. A torn tail is
// told apart from damage by its shape, as pebble's record package tells
// ErrUnexpectedEOF from ErrInvalidChunk: it is cut short by the end of the
// file, or holds never-written sectors (zero bytes, which the text format
// never writes, from a sector boundary or the batch's start to a sector
// boundary or the end of the file). Anything else is corruption of data
// that may have been acknowledged: a whole last batch whose checksum fails
// (bit rot), a bad batch before a good one, garbage after the last batch.
// Open refuses it (a *CorruptError naming file and line) unless told to
// repair, and a repaired replica rejoins as a learner.
//
// The acceptor and IDENTITY files are single lines with the same CRC
// convention, replaced atomically (temp file, fsync, rename, fsync dir).
package wal
