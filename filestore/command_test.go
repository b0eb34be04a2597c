package filestore

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"synod/wire"
)

func TestCommandRoundTrip(t *testing.T) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	tests := []struct {
		name string
		c    Command
		want string
	}{
		{"put", Command{Op: wire.OpPut, ClientID: 17, Seq: 4, Ack: 2, Stamp: 1732000000000, Key: "docs/a", Value: []byte("hello world")},
			"put 17.4.2 1732000000000 docs/a hello world"},
		{"retry", Command{Op: wire.OpPut, ClientID: 17, Seq: 4, Ack: 4, Retry: true, Stamp: 1, Key: "k", Value: []byte("v")},
			"put 17.4.4.r 1 k v"},
		{"put empty value", Command{Op: wire.OpPut, ClientID: 1, Seq: 1, Ack: 1, Stamp: 0, Key: "k", Value: []byte{}},
			"put 1.1.1 0 k "},
		{"anonymous append", Command{Op: wire.OpAppend, Seq: 9, Stamp: 5, Key: "log", Value: []byte(" x ")},
			"append 0 9 5 log  x "},
		{"cas", Command{Op: wire.OpCAS, ClientID: 2, Seq: 3, Ack: 1, Stamp: 7, Key: "a/b", Version: 12, Value: []byte("v")},
			"cas 2.3.1 7 a/b 12 v"},
		{"cas must not exist", Command{Op: wire.OpCAS, ClientID: 2, Seq: 3, Ack: 3, Stamp: 7, Key: "a", Version: 0, Value: []byte("v")},
			"cas 2.3.3 7 a 0 v"},
		{"del", Command{Op: wire.OpDel, ClientID: 2, Seq: 4, Ack: 4, Retry: true, Stamp: 8, Key: "a/b"},
			"del 2.4.4.r 8 a/b"},
		{"extremes", Command{Op: wire.OpPut, ClientID: math.MaxUint64, Seq: math.MaxUint64, Ack: 1, Stamp: math.MinInt64, Key: "é/✓", Value: []byte("\r\n")},
			"put 18446744073709551615.18446744073709551615.1 -9223372036854775808 é/✓ \r\n"},
		{"max stamp", Command{Op: wire.OpDel, Stamp: math.MaxInt64, Key: strings.Repeat("k", MaxKeyLen)},
			"del 0 0 9223372036854775807 " + strings.Repeat("k", MaxKeyLen)},
		{"binary value", Command{Op: wire.OpPut, ClientID: 1, Seq: 1, Ack: 1, Stamp: 1, Key: "bin", Value: allBytes},
			"put 1.1.1 1 bin " + string(allBytes)},
		{"version 1 put", Command{Op: wire.OpPut, ClientID: 17, Seq: 4, Legacy: true, Stamp: 1732000000000, Key: "docs/a", Value: []byte("hello world")},
			"put 17 4 1732000000000 docs/a hello world"},
		{"version 1 cas", Command{Op: wire.OpCAS, ClientID: 2, Seq: 0, Legacy: true, Stamp: 7, Key: "a/b", Version: 12, Value: []byte("v")},
			"cas 2 0 7 a/b 12 v"},
		{"version 1 del", Command{Op: wire.OpDel, ClientID: 2, Seq: 4, Legacy: true, Stamp: 8, Key: "a/b"},
			"del 2 4 8 a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := EncodeCommand([]byte("prefix"), tt.c)
			if got := string(b[len("prefix"):]); got != tt.want {
				t.Fatalf("EncodeCommand = %q, want %q", got, tt.want)
			}
			c, err := DecodeCommand([]byte(tt.want))
			if err != nil {
				t.Fatalf("DecodeCommand(%q): %v", tt.want, err)
			}
			if c.Op != tt.c.Op || c.ClientID != tt.c.ClientID || c.Seq != tt.c.Seq || c.Ack != tt.c.Ack ||
				c.Retry != tt.c.Retry || c.Legacy != tt.c.Legacy || c.Stamp != tt.c.Stamp ||
				c.Key != tt.c.Key || c.Version != tt.c.Version || !bytes.Equal(c.Value, tt.c.Value) {
				t.Fatalf("DecodeCommand = %+v, want %+v", c, tt.c)
			}
		})
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	tests := []struct {
		in     string
		badKey bool
	}{
		{in: ""},
		{in: "put"},
		{in: "put 1 2 3"},
		{in: "put 1 2 3 k"}, // value separator is mandatory
		{in: "PUT 1 2 3 k v"},
		{in: "get 1 2 3 k"},
		{in: "put  1 2 3 k v"},
		{in: "put 01 2 3 k v"},
		{in: "put 1 02 3 k v"},
		{in: "put 1 2 03 k v"},
		{in: "put 1 2 -0 k v"},
		{in: "put 1 2 +3 k v"},
		{in: "put -1 2 3 k v"},
		{in: "put 18446744073709551616 2 3 k v"},
		{in: "put 1 2 9223372036854775808 k v"},
		{in: "put 1 2 -9223372036854775809 k v"},
		{in: "put 1 x 3 k v"},
		{in: "cas 1 2 3 k v"},
		{in: "cas 1 2 3 k 5"},
		{in: "cas 1 2 3 k 05 v"},
		{in: "del 1 2 3 k ", badKey: true},
		{in: "put 1 2 3  v", badKey: true},
		{in: "del 1 2 3 ", badKey: true},
		{in: "del 1 2 3 a b", badKey: true},
		{in: "del 1 2 3 a\tb", badKey: true},
		{in: "del 1 2 3 a\x7f", badKey: true},
		{in: "del 1 2 3 \xff", badKey: true},
		{in: "del 1 2 3 a\u00a0b", badKey: true}, // no-break space
		{in: "del 1 2 3 a\u200bb", badKey: true}, // zero-width space (format char)
		{in: "put 1 2 3 " + strings.Repeat("k", MaxKeyLen+1) + " v", badKey: true},
		{in: "put 1.2 3 k v"},
		{in: "put 1.2.3 3 k v"}, // ack above seq
		{in: "put 1.2.0 3 k v"},
		{in: "put 1.0.0 3 k v"},
		{in: "put 0.1.1 3 k v"}, // no session: the version 1 form
		{in: "put 1.2.1.x 3 k v"},
		{in: "put 1.2.1.r.r 3 k v"},
		{in: "put 1.2.1. 3 k v"},
		{in: "put 1..1 3 k v"},
		{in: "put .1.1 3 k v"},
		{in: "put 1.02.1 3 k v"},
		{in: "put 1.2.1 3"},
		{in: "put 1.2.1 k v"},
		{in: "del 1.2.1.r 3 a b", badKey: true},
	}
	for _, tt := range tests {
		_, err := DecodeCommand([]byte(tt.in))
		if !errors.Is(err, ErrBadCommand) {
			t.Errorf("DecodeCommand(%q) error = %v, want ErrBadCommand", tt.in, err)
		}
		if errors.Is(err, ErrBadKey) != tt.badKey {
			t.Errorf("DecodeCommand(%q) error = %v, ErrBadKey expected %v", tt.in, err, tt.badKey)
		}
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"docs/readme.txt", true},
		{`back\slash`, true},
		{"ünïcødé/日本", true},
		{"~!@#$%^&*()_+{}|:\"<>?`-=[];',./", true},
		{strings.Repeat("x", MaxKeyLen), true},
		{strings.Repeat("é", MaxKeyLen/2), true},
		{"", false},
		{strings.Repeat("x", MaxKeyLen+1), false},
		{"a b", false},
		{"a\nb", false},
		{"a\x00", false},
		{"\x1b[31m", false},
		{"a\x7f", false},
		{"a\u0085", false}, // C1 control
		{"a\u2028", false}, // line separator
		{"bad\xc3", false}, // truncated UTF-8
		{"\xed\xa0\x80", false},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrBadKey", tt.key, err)
		}
		if validKeyBytes([]byte(tt.key)) != tt.ok {
			t.Errorf("validKeyBytes(%q) != %v", tt.key, tt.ok)
		}
	}
}
