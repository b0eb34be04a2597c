package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testManifest describes size bytes in chunks of chunkSize whose names are
// made up (a manifest does not check them against any bytes).
func testManifest(size, chunkSize uint64) Manifest {
	m := Manifest{Size: size, ChunkSize: chunkSize, Sum: SumOf([]byte(fmt.Sprint("file", size)))}
	for i := uint64(0); i < (size-1)/chunkSize+1; i++ {
		m.Chunks = append(m.Chunks, SumOf([]byte(fmt.Sprint("chunk", i))))
	}
	return m
}

func TestManifestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ size, chunk uint64 }{
		{1, MinChunkSize},
		{MinChunkSize, MinChunkSize},
		{MinChunkSize + 1, MinChunkSize},
		{64 << 20, DefaultChunkSize},
		{64<<20 - 1, DefaultChunkSize},
		{1 << 40, MaxChunkSize},
	} {
		t.Run(fmt.Sprint(tc.size, "/", tc.chunk), func(t *testing.T) {
			m := testManifest(tc.size, tc.chunk)
			text := m.Append(nil)
			got, err := ParseManifest(text)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Append(nil), text) || got.Size != tc.size || len(got.Chunks) != len(m.Chunks) {
				t.Fatalf("round trip changed the manifest")
			}
			var total uint64
			for i := range got.Chunks {
				total += uint64(got.ChunkLen(i))
			}
			if total != tc.size {
				t.Fatalf("chunk lengths add up to %d, want %d", total, tc.size)
			}
		})
	}
}

func TestParseManifestRefuses(t *testing.T) {
	good := string(testManifest(3*MinChunkSize, MinChunkSize).Append(nil))
	f := strings.Fields(good)
	names := strings.Split(f[3], ",")
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"size 0", "0 4096 " + f[2] + " " + names[0]},
		{"leading zero", "0" + good},
		{"chunk size small", fmt.Sprintf("3 %d %s %s", MinChunkSize-1, f[2], names[0])},
		{"chunk size large", fmt.Sprintf("3 %d %s %s", MaxChunkSize+1, f[2], names[0])},
		{"one chunk missing", strings.Join(f[:3], " ") + " " + strings.Join(names[:2], ",")},
		{"one chunk too many", good + "," + names[0]},
		{"semicolons", strings.Join(f[:3], " ") + " " + strings.Join(names, ";")},
		{"upper-case sum", strings.ToUpper(good)},
		{"trailing space", good + " "},
		{"huge size", "18446744073709551615 4096 " + f[2] + " " + names[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseManifest([]byte(tc.in)); !errors.Is(err, ErrBadManifest) {
				t.Fatalf("ParseManifest(%.80q) = %v, want ErrBadManifest", tc.in, err)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(testManifest(1, MinChunkSize).Append(nil))
	f.Add(testManifest(3*MinChunkSize+5, MinChunkSize).Append(nil))
	f.Add([]byte("5 4096 x y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		if !bytes.Equal(m.Append(nil), b) {
			t.Fatalf("not canonical: %q", b)
		}
	})
}
