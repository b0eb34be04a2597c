package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"synod/filestore/chunks"
	"synod/wire"
)

// testManifest describes size bytes in chunks of chunkSize whose names are
// made up (a manifest does not check them against any bytes).
func testManifest(size, chunkSize uint64) Manifest {
	m := Manifest{Size: size, ChunkSize: chunkSize, Sum: chunks.Of([]byte(fmt.Sprint("file", size)))}
	for i := uint64(0); i < (size-1)/chunkSize+1; i++ {
		m.Chunks = append(m.Chunks, chunks.Of([]byte(fmt.Sprint("chunk", i))))
	}
	return m
}

func TestManifestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ size, chunk uint64 }{
		{1, MinChunkSize},
		{MinChunkSize, MinChunkSize},
		{MinChunkSize + 1, MinChunkSize},
		{64 << 20, chunks.DefaultSize},
		{64<<20 - 1, chunks.DefaultSize},
		{1 << 40, chunks.MaxSize},
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
		{"chunk size large", fmt.Sprintf("3 %d %s %s", chunks.MaxSize+1, f[2], names[0])},
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

func TestPutFileCommand(t *testing.T) {
	mf := testManifest(10<<20, chunks.DefaultSize)
	cmd := Command{Op: wire.OpPutFile, ClientID: 7, Seq: 1, Stamp: 1, Key: "big/file", Value: mf.Append(nil)}
	enc := EncodeCommand(nil, cmd)
	if !bytes.HasPrefix(enc, []byte("putfile 7.1.1 1 big/file 10485760 4194304 ")) {
		t.Fatalf("encoding %.80q", enc)
	}
	if _, err := DecodeCommand(enc); err != nil {
		t.Fatal(err)
	}
	bad := EncodeCommand(nil, Command{Op: wire.OpPutFile, Stamp: 1, Key: "k", Value: []byte("not a manifest")})
	if _, err := DecodeCommand(bad); !errors.Is(err, ErrBadCommand) || !errors.Is(err, ErrBadManifest) {
		t.Fatalf("bad manifest decoded: %v", err)
	}

	m := New(Options{})
	if r := m.Apply(1, enc); r.Code != wire.CodeOK {
		t.Fatalf("putfile: %+v", r)
	}
	if size, ver, ok := m.Stat("big/file"); !ok || size != 10<<20 || ver != 1 || !m.IsLarge("big/file") {
		t.Fatalf("Stat = %d, %d, %v; large %v", size, ver, ok, m.IsLarge("big/file"))
	}
	app := EncodeCommand(nil, Command{Op: wire.OpAppend, Stamp: 2, Key: "big/file", Value: []byte("x")})
	if r := m.Apply(2, app); r.Code != wire.CodeTooLarge {
		t.Fatalf("APPEND to a large file: %+v", r)
	}
	// The same bytes as a small file are another state.
	small := New(Options{})
	small.Apply(1, EncodeCommand(nil, Command{Op: wire.OpPut, ClientID: 7, Seq: 1, Stamp: 1, Key: "big/file", Value: mf.Append(nil)}))
	small.Apply(2, app)
	if small.Digest() == m.Digest() {
		t.Fatal("a large file and a small file with its manifest as value digest alike")
	}

	// Snapshots carry it as an L line, in format 4.
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: 2}); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("SNAP 4 ")) || !bytes.Contains(buf.Bytes(), []byte("\nL big/file 1 10485760\\s4194304\\s")) {
		t.Fatalf("snapshot:\n%.300s", buf.Bytes())
	}
	back, _, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !back.IsLarge("big/file") || back.Digest() != m.Digest() {
		t.Fatal("the snapshot lost the large file")
	}
	// A PUT makes it small again.
	m.Apply(3, EncodeCommand(nil, Command{Op: wire.OpPut, Stamp: 3, Key: "big/file", Value: []byte("v")}))
	if m.IsLarge("big/file") {
		t.Fatal("PUT left the file large")
	}
}
