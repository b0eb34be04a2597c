package wire

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// reflectEncode is the reflective encoder alone, set up as wire's
// encoders are, so the hand-written codec can be held to it.
func reflectEncode(t testing.TB, v any, compact bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(compact)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("msgpack encode %T: %v", v, err)
	}
	return buf.Bytes()
}

// reflectDecode is the reflective decoder alone, into a fresh value.
func reflectDecode(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := msgpack.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		t.Fatalf("msgpack decode into %T: %v", v, err)
	}
}

// edgeUints are the integers around every boundary of msgpack's encodings.
var edgeUints = []uint64{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}

// edgeLens are the lengths around every boundary of str and bin headers.
var edgeLens = []int{0, 1, 31, 32, 255, 256, 0xffff, 0x10000}

func randUint(rng *rand.Rand) uint64 {
	if rng.IntN(2) == 0 {
		return edgeUints[rng.IntN(len(edgeUints))]
	}
	return rng.Uint64() >> rng.IntN(64)
}

func randLen(rng *rand.Rand, limit int) int {
	if rng.IntN(2) == 0 {
		if n := edgeLens[rng.IntN(len(edgeLens))]; n < limit {
			return n
		}
	}
	return rng.IntN(min(limit, 300))
}

func randStr(rng *rand.Rand) string {
	return strings.Repeat("k", randLen(rng, 0x10001))
}

// randBin is nil, empty or some bytes, below refMin (larger values are
// left to msgpack).
func randBin(rng *rand.Rand) []byte {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, randLen(rng, refMin))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func randRequest(rng *rand.Rand) *Request {
	return &Request{
		Op: Op(randUint(rng)), Key: randStr(rng), Value: randBin(rng), Version: randUint(rng),
		ClientID: randUint(rng), Seq: randUint(rng), Consistency: Consistency(randUint(rng)),
		MinIndex: randUint(rng), Ack: randUint(rng), Retry: rng.IntN(2) == 0,
		MemberID: randUint(rng), MemberAddr: randStr(rng), Offset: randUint(rng), Length: randUint(rng),
	}
}

func randReply(rng *rand.Rand) *Reply {
	return &Reply{
		Code: Code(randUint(rng)), Index: randUint(rng), Version: randUint(rng), Value: randBin(rng),
		Msg: randStr(rng), MasterID: randUint(rng), MasterAddr: randStr(rng), Applied: randUint(rng),
		Size: randUint(rng), NotApplied: rng.IntN(2) == 0, ConfigSlot: randUint(rng),
		Through: randUint(rng), Oldest: randUint(rng), Sum: randStr(rng),
	}
}

// TestFastCodecMatchesMsgpack holds the hand-written codec to msgpack's:
// the same bytes out, the same value back (nil and empty values told
// apart), for seeded random bodies over every encoding boundary.
func TestFastCodecMatchesMsgpack(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 1))
	for i := range 3000 {
		var body fastBody
		var fresh func() fastBody
		if i%2 == 0 {
			body, fresh = randRequest(rng), func() fastBody { return new(Request) }
		} else {
			body, fresh = randReply(rng), func() fastBody { return new(Reply) }
		}
		want := reflectEncode(t, body, true)
		got, ok := body.appendFast([]byte{0xee})
		if !ok {
			t.Fatalf("%+v: fast encoder declined", body)
		}
		if !bytes.Equal(got[1:], want) || got[0] != 0xee {
			t.Fatalf("%T: fast encoding\n%x\nmsgpack's\n%x", body, got[1:], want)
		}
		// Decoded by hand, from compact and from full-width integers: the
		// value msgpack decodes.
		for _, compact := range []bool{true, false} {
			enc := reflectEncode(t, body, compact)
			viaMsgpack := fresh()
			reflectDecode(t, enc, viaMsgpack)
			viaFast := fresh()
			if err := viaFast.decodeFast(enc); err != nil {
				t.Fatalf("%T (compact %v): fast decoder refused %x: %v", body, compact, enc, err)
			}
			if !reflect.DeepEqual(viaFast, viaMsgpack) {
				t.Fatalf("%T: fast decoding %+v, msgpack's %+v", body, viaFast, viaMsgpack)
			}
			// And through Unmarshal, which takes the fast path, and
			// DecodeRequest or DecodeReply.
			viaUnmarshal := fresh()
			if err := Unmarshal(enc, viaUnmarshal); err != nil || !reflect.DeepEqual(viaUnmarshal, viaMsgpack) {
				t.Fatalf("%T: Unmarshal gave %+v, %v; msgpack %+v", body, viaUnmarshal, err, viaMsgpack)
			}
			if got, err := decodeTyped(enc, fresh()); err != nil || !reflect.DeepEqual(got, viaMsgpack) {
				t.Fatalf("%T: DecodeRequest/DecodeReply gave %+v, %v; msgpack %+v", body, got, err, viaMsgpack)
			}
		}
	}
}

// TestFastCodecLeavesTheRestToMsgpack: bodies the fast encoder does not
// cover are encoded by msgpack, as before, and every one decodes back.
func TestFastCodecLeavesTheRestToMsgpack(t *testing.T) {
	big := bytes.Repeat([]byte{7}, refMin)
	cases := []fastBody{
		&Request{Op: OpWatch, Key: "k", Watch: &WatchPoll{Prefix: true, From: 9, Wait: 100}},
		&Request{Op: OpPut, Key: "k", Value: big},
		&Reply{Keys: []string{"a", "b"}},
		&Reply{Keys: []string{}},
		&Reply{Members: []Member{{ID: 1, Addr: "x", Voter: true}}},
		&Reply{Events: []Event{{Index: 3, Op: OpPut, Key: "k", Value: []byte("v")}}},
		&Reply{Value: big},
	}
	for _, body := range cases {
		if _, ok := body.appendFast(nil); ok {
			t.Fatalf("%+v: fast encoder took a body it does not cover", body)
		}
		b, err := Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if want := reflectEncode(t, body, true); !bytes.Equal(b, want) {
			t.Fatalf("%T: Marshal wrote %x, msgpack %x", body, b, want)
		}
		// A large value decodes by hand too (a copy, as msgpack's); the
		// rest is msgpack's.
		if v := reflect.New(reflect.TypeOf(body).Elem()).Interface().(fastBody); v.decodeFast(b) == nil && !reflect.DeepEqual(v, body) {
			t.Fatalf("%T: fast decoder took %+v as %+v", body, body, v)
		}
		got := reflect.New(reflect.TypeOf(body).Elem()).Interface()
		if err := Unmarshal(b, got); err != nil || !reflect.DeepEqual(got, body) {
			t.Fatalf("%T: Unmarshal gave %+v, %v; want %+v", body, got, err, body)
		}
		typed, err := decodeTyped(b, reflect.New(reflect.TypeOf(body).Elem()).Interface().(fastBody))
		if err != nil || !reflect.DeepEqual(typed, body) {
			t.Fatalf("%T: DecodeRequest/DecodeReply gave %+v, %v; want %+v", body, typed, err, body)
		}
	}
}

// decodeTyped decodes b with DecodeRequest or DecodeReply, by into's type.
func decodeTyped(b []byte, into fastBody) (fastBody, error) {
	switch v := into.(type) {
	case *Request:
		return v, DecodeRequest(b, v)
	case *Reply:
		return v, DecodeReply(b, v)
	}
	panic("not a fast body")
}

// TestDecodeTypedErrors: DecodeRequest and DecodeReply refuse what
// Unmarshal refuses, with ErrBadBody.
func TestDecodeTypedErrors(t *testing.T) {
	for _, b := range [][]byte{nil, {0x9f}, {0xc1}, {0x93, 1, 2, 3, 4}, mustMarshal(t, &Status{ID: 1, Role: NodeMaster})} {
		for _, into := range []fastBody{new(Request), new(Reply)} {
			_, err := decodeTyped(b, into)
			uerr := Unmarshal(b, reflect.New(reflect.TypeOf(into).Elem()).Interface())
			if (err == nil) != (uerr == nil) || (err != nil && !errors.Is(err, ErrBadBody)) {
				t.Fatalf("%x into %T: %v; Unmarshal: %v", b, into, err, uerr)
			}
		}
	}
}

// TestFastDecodeRefusesDamage: every cut of a body and every changed byte
// is refused by the fast decoder or decodes as msgpack decodes it, and the
// receiver is left alone when refused.
func TestFastDecodeRefusesDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 2))
	for i := range 200 {
		var body fastBody
		if i%2 == 0 {
			body = randRequest(rng)
		} else {
			body = randReply(rng)
		}
		enc := reflectEncode(t, body, true)
		if len(enc) > 4096 {
			continue
		}
		typ := reflect.TypeOf(body).Elem()
		check := func(b []byte) {
			v := reflect.New(typ).Interface().(fastBody)
			if err := v.decodeFast(b); err != nil {
				if !reflect.DeepEqual(v, reflect.New(typ).Interface()) {
					t.Fatalf("%v: refused %x but changed the receiver: %+v", typ, b, v)
				}
				return
			}
			w := reflect.New(typ).Interface()
			if err := msgpack.NewDecoder(bytes.NewReader(b)).Decode(w); err != nil || !reflect.DeepEqual(v, w) {
				t.Fatalf("%v: fast decoder took %x as %+v; msgpack %+v, %v", typ, b, v, w, err)
			}
		}
		for n := range len(enc) {
			check(enc[:n])
		}
		for range 50 {
			b := bytes.Clone(enc)
			b[rng.IntN(len(b))] = byte(rng.Uint32())
			if checkValue(b) == nil {
				check(b)
			}
		}
	}
}

// FuzzFastDecode: whatever the fast decoder takes, msgpack decodes the
// same.
func FuzzFastDecode(f *testing.F) {
	f.Add(mustMarshal(f, &Request{Op: OpPut, Key: "k", Value: []byte("v"), ClientID: 1 << 40, Seq: 3, Ack: 2}))
	f.Add(mustMarshal(f, &Reply{Code: CodeNotMaster, Msg: "not the master", MasterID: 2, MasterAddr: "127.0.0.1:1", NotApplied: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkValue(b) != nil {
			return // Unmarshal refuses it before any decoder sees it
		}
		for _, into := range []func() fastBody{func() fastBody { return new(Request) }, func() fastBody { return new(Reply) }} {
			v := into()
			if v.decodeFast(b) != nil {
				continue
			}
			w := into()
			if err := msgpack.NewDecoder(bytes.NewReader(b)).Decode(w); err != nil || !reflect.DeepEqual(v, w) {
				t.Fatalf("fast decoder took %x as %+v; msgpack %+v, %v", b, v, w, err)
			}
		}
	})
}

func BenchmarkRequestCodec(b *testing.B) {
	req := &Request{Op: OpPut, Key: "key-000123", Value: bytes.Repeat([]byte{'v'}, 100), ClientID: 1<<63 + 12345, Seq: 4711, Ack: 4700}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = AppendMarshal(buf[:0], req)
		}
	})
	enc := mustMarshal(b, req)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r Request
			if err := Unmarshal(enc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r Request
			if err := DecodeRequest(enc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkReplyCodec(b *testing.B) {
	rep := &Reply{Code: CodeOK, Index: 1 << 20, Version: 3, Applied: 1<<20 + 5}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = AppendMarshal(buf[:0], rep)
		}
	})
	enc := mustMarshal(b, rep)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r Reply
			if err := Unmarshal(enc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r Reply
			if err := DecodeReply(enc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
