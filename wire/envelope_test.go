package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Envelope // zero: want ErrBadBody
	}{
		{"canonical", AppendEnvelope(nil, KindPing, 7, nil), Envelope{KindPing, 7, []byte{0xc0}}},
		{"big id", AppendEnvelope(nil, KindReply, 1<<64-1, []byte{0x01}), Envelope{KindReply, 1<<64 - 1, []byte{0x01}}},
		{"array16 header", []byte{0xdc, 0, 3, 0x05, 0x01, 0xc0}, Envelope{KindRequest, 1, []byte{0xc0}}},
		{"array32 header", []byte{0xdd, 0, 0, 0, 3, 0x05, 0x01, 0xc0}, Envelope{KindRequest, 1, []byte{0xc0}}},
		{"uint8 kind", []byte{0x93, 0xcc, 0x04, 0x00, 0xc0}, Envelope{KindPaxos, 0, []byte{0xc0}}},
		{"int64 id", []byte{0x93, 0x04, 0xd3, 0, 0, 0, 0, 0, 0, 1, 0, 0xc0}, Envelope{KindPaxos, 256, []byte{0xc0}}},
		{"nested body", AppendEnvelope(nil, KindPaxos, 1, []byte{0x92, 0x91, 0x01, 0x81, 0xa1, 'k', 0xc4, 1, 9}),
			Envelope{KindPaxos, 1, []byte{0x92, 0x91, 0x01, 0x81, 0xa1, 'k', 0xc4, 1, 9}}},
		{"empty", nil, Envelope{}},
		{"not an array", []byte{0x83}, Envelope{}},
		{"two elements", []byte{0x92, 0x05, 0x01}, Envelope{}},
		{"four elements", []byte{0x94, 0x05, 0x01, 0xc0, 0xc0}, Envelope{}},
		{"kind zero", AppendEnvelope(nil, 0, 1, nil), Envelope{}},
		{"kind undefined", AppendEnvelope(nil, kindEnd, 1, nil), Envelope{}},
		{"kind over a byte", []byte{0x93, 0xcd, 0x01, 0x04, 0x00, 0xc0}, Envelope{}},
		{"negative kind", []byte{0x93, 0xff, 0x00, 0xc0}, Envelope{}},
		{"negative id", []byte{0x93, 0x04, 0xd0, 0x80, 0xc0}, Envelope{}},
		{"string id", []byte{0x93, 0x04, 0xa1, 'x', 0xc0}, Envelope{}},
		{"short id", []byte{0x93, 0x04, 0xcf, 0, 0}, Envelope{}},
		{"missing body", []byte{0x93, 0x04, 0x01}, Envelope{}},
		{"trailing byte", []byte{0x93, 0x04, 0x01, 0xc0, 0xc0}, Envelope{}},
		{"truncated body", []byte{0x93, 0x04, 0x01, 0xc4, 0x05, 1, 2}, Envelope{}},
		{"reserved code", []byte{0x93, 0x04, 0x01, 0xc1}, Envelope{}},
		{"array count past end", []byte{0x93, 0x04, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, Envelope{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEnvelope(tt.in)
			if tt.want.Kind == 0 {
				if !errors.Is(err, ErrBadBody) {
					t.Fatalf("got %+v, %v; want ErrBadBody", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tt.want.Kind || got.ID != tt.want.ID || !bytes.Equal(got.Body, tt.want.Body) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValueLen(t *testing.T) {
	nested := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x91}, depth)
		return append(b, 0xc0)
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"fixints", []byte{0x7f}, true},
		{"negative fixint", []byte{0xe0}, true},
		{"float64", []byte{0xcb, 1, 2, 3, 4, 5, 6, 7, 8}, true},
		{"short float64", []byte{0xcb, 1, 2, 3}, false},
		{"fixstr", []byte{0xa3, 'a', 'b', 'c'}, true},
		{"short fixstr", []byte{0xa3, 'a'}, false},
		{"str16", []byte{0xda, 0, 2, 'a', 'b'}, true},
		{"bin32", []byte{0xc6, 0, 0, 0, 1, 9}, true},
		{"bin32 huge", []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 9}, false},
		{"fixmap", []byte{0x81, 0x01, 0x02}, true},
		{"fixmap missing value", []byte{0x81, 0x01}, false},
		{"map32 huge", []byte{0xdf, 0x80, 0, 0, 0, 1, 2}, false},
		{"fixext4", []byte{0xd6, 1, 1, 2, 3, 4}, true},
		{"fixext16 short", []byte{0xd8, 1, 1, 2}, false},
		{"ext8", []byte{0xc7, 2, 5, 1, 2}, true},
		{"ext8 short", []byte{0xc7, 2, 5, 1}, false},
		{"nesting at the bound", nested(maxDepth), true},
		{"nesting past the bound", nested(maxDepth + 1), false},
		{"very deep nesting", nested(1 << 20), false},
		{"nesting cut", nested(10)[:10], false},
		{"empty containers", []byte{0x92, 0x90, 0x80}, true},
		{"map of arrays", []byte{0x82, 0x91, 0x01, 0x92, 0x02, 0x03, 0xa0, 0x90}, true},
		{"map of arrays missing value", []byte{0x82, 0x91, 0x01, 0x92, 0x02, 0x03, 0xa0}, false},
	}
	for _, tt := range tests {
		err := checkValue(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("%s: got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestCheckValueAgreesWithMsgpack checks the hand-written checker against
// the library on values the library encodes.
func TestCheckValueAgreesWithMsgpack(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, -33, 200, -200, 70000, -70000, 1 << 40, -(1 << 40), uint64(1<<64 - 1),
		float32(1.5), 2.5, "", strings.Repeat("s", 40), strings.Repeat("s", 300), strings.Repeat("s", 70000),
		[]byte{}, make([]byte, 300), make([]byte, 70000), []int{1, 2, 3}, make([]int, 20), make([]bool, 70000),
		map[string]int{"a": 1}, map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 10, 11: 11, 12: 12, 13: 13, 14: 14, 15: 15, 16: 16},
		fullRequest(), fullReply(), fullStatus(), replicaHello(1),
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkValue(b); err != nil {
			t.Errorf("%T: %v", v, err)
		}
		if len(b) > 1 {
			if err := checkValue(b[:len(b)-1]); err == nil {
				t.Errorf("%T cut by one byte passes", v)
			}
		}
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindHello; k < kindEnd; k++ {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "kind(") || seen[s] {
			t.Errorf("kind %d: name %q missing or repeated", k, s)
		}
		seen[s] = true
	}
	for _, k := range []Kind{0, kindEnd, 255} {
		if k.Valid() || !strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("kind %d: valid %v, name %q", k, k.Valid(), k)
		}
	}
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		into any
		ok   bool
	}{
		{"request", mustMarshal(t, fullRequest()), new(Request), true},
		{"wrong type", mustMarshal(t, "string"), new(Request), false},
		{"wrong field count", mustMarshal(t, []int{1, 2}), new(Request), false},
		{"trailing bytes", append(mustMarshal(t, 1), 1), new(int), false},
		{"empty", nil, new(int), false},
		{"huge count", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, new([]Request), false},
		// As a map, a struct skips unknown fields, and msgpack skips by recursion.
		{"deep unknown field", append([]byte{0x81, 0xa1, 'x'}, append(bytes.Repeat([]byte{0x91}, 1<<20), 0xc0)...), new(Request), false},
	}
	for _, tt := range tests {
		err := Unmarshal(tt.in, tt.into)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrBadBody) {
			t.Errorf("%s: got %v, want ErrBadBody", tt.name, err)
		}
	}
}

func TestUnmarshalDoesNotAlias(t *testing.T) {
	b := mustMarshal(t, fullRequest())
	var r Request
	if err := Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if !bytes.Equal(r.Value, fullRequest().Value) || r.Key != fullRequest().Key {
		t.Fatal("decoded request changed with its input")
	}
}

func TestMarshalCompactInts(t *testing.T) {
	b := mustMarshal(t, &Request{Op: OpGet, Seq: 5})
	// as_array: one byte of array header, then each field one byte
	// (small ints, empty strings, nil, false).
	fields := reflect.TypeOf(Request{}).NumField() - 1 // less the _msgpack tag
	if len(b) != 1+fields {
		t.Fatalf("encoded %d bytes (%x), want %d", len(b), b, 1+fields)
	}
}

func TestAppendMessageMatchesParts(t *testing.T) {
	got, err := AppendMessage([]byte("x"), KindRequest, 300, fullRequest(), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("x"), AppendFrame(nil, AppendEnvelope(nil, KindRequest, 300, mustMarshal(t, fullRequest())))...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	if _, err := AppendMessage(nil, KindRequest, 1, fullRequest(), 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
}

func TestEnvelopeMsgpackCodec(t *testing.T) {
	for _, env := range []Envelope{
		{KindPing, 0, nil},
		{KindReply, 1 << 50, mustMarshal(t, fullReply())},
	} {
		b := mustMarshal(t, env)
		if want := AppendEnvelope(nil, env.Kind, env.ID, env.Body); !bytes.Equal(b, want) {
			t.Fatalf("Marshal gives %x, AppendEnvelope %x", b, want)
		}
		var got Envelope
		if err := Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if want := (Envelope{env.Kind, env.ID, AppendEnvelope(nil, 1, 0, env.Body)[3:]}); got.Kind != want.Kind ||
			got.ID != want.ID || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	var got Envelope
	if err := Unmarshal(AppendEnvelope(nil, 0, 1, nil), &got); !errors.Is(err, ErrBadBody) {
		t.Fatalf("kind 0: got %v, want ErrBadBody", err)
	}
}
