package wire

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestDecodeChunkPut(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 65535, 65536, 4 << 20} {
		want := ChunkPut{Sum: bytes.Repeat([]byte{7}, 32), Data: bytes.Repeat([]byte{'d'}, n)}
		body := mustMarshal(t, &want)
		got, err := DecodeChunkPut(body)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got.Sum, want.Sum) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%d bytes: decoded differently", n)
		}
		if n > 0 {
			body[len(body)-1] = 'X' // the data's last byte: Data aliases body
			if got.Data[n-1] != 'X' {
				t.Fatalf("%d bytes: Data does not alias the body", n)
			}
		}
	}
	// A nil Data, and layouts only Unmarshal reads (str fields, a map).
	for _, v := range []any{
		&ChunkPut{Sum: []byte{1}},
		[]any{"sum", "data"},
		map[string]any{"Sum": []byte{1}},
	} {
		body := mustMarshal(t, v)
		var want ChunkPut
		werr := Unmarshal(body, &want)
		got, err := DecodeChunkPut(body)
		if (err == nil) != (werr == nil) || !bytes.Equal(got.Sum, want.Sum) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%#v: got %v, %v; Unmarshal gives %v, %v", v, got, err, want, werr)
		}
	}
}

func FuzzDecodeChunkPut(f *testing.F) {
	f.Add(mustMarshal(f, &ChunkPut{Sum: []byte("s"), Data: []byte("data")}))
	f.Add([]byte{0x92, 0xc4, 0x01, 's', 0xc4, 0x05, 'x'})
	f.Add([]byte{0x92, 0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff})
	enc, _ := msgpack.Marshal([]any{[]byte("s"), "str"})
	f.Add(enc)
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := DecodeChunkPut(body)
		var want ChunkPut
		werr := Unmarshal(body, &want)
		if err != nil {
			if werr == nil {
				t.Fatalf("DecodeChunkPut refused what Unmarshal took: %v", err)
			}
			return
		}
		if werr != nil {
			t.Fatalf("DecodeChunkPut took what Unmarshal refused: %v", werr)
		}
		if !bytes.Equal(got.Sum, want.Sum) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("decoded %v, Unmarshal %v", got, want)
		}
	})
}
