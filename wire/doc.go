// Package wire is synod's binary protocol between replicas, proxies and
// other programs that speak it: length-prefixed msgpack frames, an envelope
// naming each message, a versioned handshake, and a buffered framed
// connection.
//
// # Frame format
//
// Every message on a connection is one frame:
//
//	+----------------+------------------------------------------+
//	| length: uint32 | body: length bytes of msgpack            |
//	| big endian     |                                          |
//	+----------------+------------------------------------------+
//
// The length counts the body only. A reader refuses a length above its
// maximum (DefaultMaxFrame, 16 MiB, unless configured) before allocating
// anything, and grows a body as its bytes arrive beyond the largest body
// the same connection has already delivered whole, so a peer cannot make
// it reserve much more memory than it has sent. Conn keeps the buffers of
// frames over 1 MiB in a pool shared by all connections, and Send writes
// a body's byte strings of 64 KiB or more from the caller's memory,
// straight to the socket, without copying them into the frame.
//
// The body is an envelope, a msgpack array of exactly three elements:
//
//	[ kind (uint, 1..255), id (uint64), body (one msgpack value) ]
//
// The kind names what the inner body holds (see Kind); id matches a reply
// to its request, 0 for one-way messages. The inner body is kept as raw
// msgpack (Envelope.Body) so a receiver decodes it into the type its kind
// names, and so paxos messages pass through wire untouched.
//
// # Handshake
//
// The first frame each way is the handshake. The dialer sends KindHello
// carrying its Hello (protocol version, cluster id, node id, role). The
// acceptor answers KindWelcome carrying its own Hello, or KindRefuse with a
// reason and then closes. Hello is encoded as a msgpack map, unlike the
// other messages, so that any future version can still read the version
// field and refuse cleanly.
//
// # Compatibility
//
// The frame format, the envelope layout and the meaning of every Kind never
// change without bumping ProtocolVersion. Message structs are encoded as
// msgpack arrays (as_array), and this msgpack library rejects an array whose
// length differs from the struct's field count, so adding a field to one of
// them is a protocol change too.
//
// # Errors
//
// A frame longer than the maximum (ErrFrameTooLarge), a connection cut
// mid-frame (ErrTruncated) or a body that does not decode (ErrBadBody)
// closes that connection only; every other connection is unaffected.
package wire
