package node

import (
	"testing"

	"synod/wire"
)

func TestRangeOfSmall(t *testing.T) {
	v := []byte("0123456789")
	for _, tc := range []struct {
		off, n uint64
		want   string
		code   wire.Code
	}{
		{0, 10, "0123456789", wire.CodeOK},
		{0, 100, "0123456789", wire.CodeOK},
		{3, 4, "3456", wire.CodeOK},
		{9, 1 << 40, "9", wire.CodeOK},
		{10, 5, "", wire.CodeOK}, // at the end: nothing more
		{11, 1, "", wire.CodeBadRequest},
		{1<<64 - 1, 1<<64 - 1, "", wire.CodeBadRequest},
	} {
		var rep wire.Reply
		rangeOfSmall(&rep, wire.Request{Offset: tc.off, Length: tc.n}, v)
		if rep.Code != tc.code || string(rep.Value) != tc.want || tc.code == wire.CodeOK && (rep.Size != 10 || rep.Sum != wire.SumOf(v).String()) {
			t.Errorf("range %d+%d: %s %q size %d", tc.off, tc.n, rep.Code, rep.Value, rep.Size)
		}
	}
}
