package wire

// This file owns the bodies that move chunks of large files between a
// proxy and the replicas, and between replicas: ChunkPut and its ChunkAck,
// ChunkGet and its ChunkData, ChunkHas and its ChunkHeld. Plain values, encoded as arrays like every
// body; the goroutine that sends or receives them owns them.

// ChunkPut asks a replica to store a chunk durably (KindChunkPut). Sum is
// the SHA-256 of Data, 32 bytes; the replica checks it before it writes.
type ChunkPut struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Sum  []byte
	Data []byte
}

// ChunkAck answers a ChunkPut (KindChunkAck): CodeOK once the chunk is on
// the replica's disk (fsynced), else why not.
type ChunkAck struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Code Code
	Msg  string
}

// ChunkGet asks a replica for the chunk named Sum (KindChunkGet).
type ChunkGet struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Sum []byte
}

// ChunkData answers a ChunkGet (KindChunkData): the chunk's bytes with
// CodeOK, CodeNotFound if the replica lacks it, or an error.
type ChunkData struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Code Code
	Msg  string
	Data []byte
}

// ChunkHas asks a replica which of the chunks named in Sums (32 bytes
// each) it holds on disk, durably (KindChunkHas): a proxy asks it after a
// large file's manifest is chosen, before it acknowledges the file.
type ChunkHas struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Sums [][]byte
}

// ChunkHeld answers a ChunkHas (KindChunkHeld): with CodeOK, Held[i]
// says whether the replica holds Sums[i] durably; else why it cannot say.
type ChunkHeld struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Code Code
	Msg  string
	Held []bool
}

// DecodeChunkPut decodes a ChunkPut body without copying its bytes: the
// result's Sum and Data alias body, so they are valid only as long as
// body is (a Conn's read buffer: until the next Recv). A replica that
// stores the chunk before it reads on saves a copy of every chunk this
// way. A body encoded other than as Send encodes a ChunkPut (two bin
// fields) is decoded by Unmarshal, which copies; errors match ErrBadBody.
func DecodeChunkPut(body []byte) (ChunkPut, error) {
	if p, ok := aliasChunkPut(body); ok {
		return p, nil
	}
	var p ChunkPut
	err := Unmarshal(body, &p)
	return p, err
}

// aliasChunkPut parses the one layout Send gives a ChunkPut: an array of
// two bin (or nil) values and nothing after it.
func aliasChunkPut(b []byte) (ChunkPut, bool) {
	n, pos, err := readArrayLen(b, 0)
	if err != nil || n != 2 {
		return ChunkPut{}, false
	}
	sum, pos, ok := aliasBin(b, pos)
	if !ok {
		return ChunkPut{}, false
	}
	data, pos, ok := aliasBin(b, pos)
	if !ok || pos != len(b) {
		return ChunkPut{}, false
	}
	return ChunkPut{Sum: sum, Data: data}, true
}

// aliasBin returns the bin value (nil for msgpack nil) at b[pos:] as a
// slice of b, and the position after it; false if there is none.
func aliasBin(b []byte, pos int) ([]byte, int, bool) {
	if pos >= len(b) {
		return nil, pos, false
	}
	var size int
	switch b[pos] {
	case 0xc0:
		return nil, pos + 1, true
	case 0xc4:
		size = 1
	case 0xc5:
		size = 2
	case 0xc6:
		size = 4
	default:
		return nil, pos, false
	}
	l, err := readLen(b, pos+1, size)
	if err != nil {
		return nil, pos, false
	}
	start := pos + 1 + size
	if l > len(b)-start {
		return nil, pos, false
	}
	return b[start : start+l : start+l], start + l, true
}
