package wire

// This file owns the bodies that move chunks of large files between a
// proxy and the replicas, and between replicas: ChunkPut and its ChunkAck,
// ChunkGet and its ChunkData. Plain values, encoded as arrays like every
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
