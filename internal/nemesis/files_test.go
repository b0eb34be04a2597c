package nemesis

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"synod/wire/line"
)

func TestFileData(t *testing.T) {
	const chunk = 4096
	chunks := map[string]string{}
	for _, tok := range []string{"0.1;", "0.2;", "1.1;", "12.345;"} {
		a, b := fileData(tok, chunk), fileData(tok, chunk)
		if string(a) != string(b) {
			t.Fatalf("%s: two makings differ", tok)
		}
		if len(a) <= 2*chunk || len(a) >= 3*chunk {
			t.Fatalf("%s: %d bytes, want three chunks of %d, the last partial", tok, len(a), chunk)
		}
		for off := 0; off < len(a); off += chunk {
			c := string(a[off:min(off+chunk, len(a))])
			if other, ok := chunks[c]; ok {
				t.Fatalf("%s: chunk at %d is also one of %s", tok, off, other)
			}
			chunks[c] = tok
		}
	}
	reg := newFileRegistry(chunk)
	data, sum := reg.add("0.1;")
	if sum != sumHex(fileData("0.1;", chunk)) || string(data) != string(fileData("0.1;", chunk)) {
		t.Fatal("the registry's file is not the token's")
	}
	if tok, ok := reg.token(sum); !ok || tok != "0.1;" {
		t.Fatalf("token(%s) = %q, %v", sum, tok, ok)
	}
	if _, ok := reg.token(sumHex([]byte("x"))); ok {
		t.Fatal("a file never written has a token")
	}
}

// fileOp is o on file key f/00, a file's write or read.
func fileOp(op Op) Op { op.Key, op.File = "f/00", true; return op }

func TestCheckFileHistory(t *testing.T) {
	base := []Op{
		fileOp(o(0, 0, 10, KindPut, "0.1;", OK, 5)),
		fileOp(cas(1, 11, 20, 5, "1.1;", OK, 7)),
		fileOp(cas(2, 21, 30, 5, "2.1;", Conflict, 7)),
		fileOp(o(3, 31, 40, KindPut, "3.1;", Unknown, 0)),
		fileOp(get(0, 12, 14, "0.1;", OK, 5)),
		fileOp(get(1, 21, 25, "1.1;", OK, 7)),
	}
	for _, tc := range []struct {
		name string
		ops  []Op
		want string // a violation must contain it; "" means none
	}{
		{"clean", append(append([]Op(nil), base...), final(fileOp(get(4, 50, 60, "3.1;", OK, 9)))), ""},
		{"unknown write never took effect", append(append([]Op(nil), base...), final(fileOp(get(4, 50, 60, "1.1;", OK, 7)))), ""},
		{"bad bytes", append(append([]Op(nil), base...),
			at(line.LevelStale, fileOp(get(4, 41, 45, "bad-bytes(sha256 00, the reply names 11);", OK, 7))),
			final(fileOp(get(4, 50, 60, "1.1;", OK, 7)))), "never written"},
		{"lost", append(append([]Op(nil), base...), final(fileOp(get(4, 50, 60, "0.1;", OK, 5)))), "lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				tc.ops[i].ID = i
				if tc.ops[i].Kind == KindGet && tc.ops[i].Level == 0 {
					tc.ops[i].Level = line.LevelLinearizable
				}
			}
			rep := Check(History{Ops: tc.ops}, CheckOptions{Timeout: 10 * time.Second})
			got := strings.Join(rep.Violations, "\n")
			switch {
			case tc.want == "" && (!rep.OK() || got != ""):
				t.Fatalf("porcupine %v, violations:\n%s", rep.Linearizable, got)
			case tc.want != "" && !strings.Contains(got, tc.want) && rep.Linearizable == porcupine.Ok:
				t.Fatalf("want a violation with %q, got porcupine %v and:\n%s", tc.want, rep.Linearizable, got)
			}
		})
	}
}

// rangeServer answers GET RANGE of the keys it holds, one connection at a
// time: f/bad with a checksum that does not match its bytes.
func rangeServer(t *testing.T, files map[string][]byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r := line.NewReader(bufio.NewReader(c), line.Limits{})
			bw := bufio.NewWriter(c)
			w := line.NewWriter(bw)
			for {
				req, err := r.ReadRequest()
				if err != nil {
					break
				}
				data, ok := files[req.Key]
				switch {
				case !ok:
					w.NotFound()
				case req.Key == "f/bad":
					w.Range(data, 3, uint64(len(data)), sumHex([]byte("other bytes")))
				default:
					w.Range(data, 3, uint64(len(data)), sumHex(data))
				}
				if w.Flush() != nil {
					break
				}
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestReadFile(t *testing.T) {
	reg := newFileRegistry(4096)
	good, sum := reg.add("0.1;")
	addr := rangeServer(t, map[string][]byte{"f/good": good, "f/bad": good, "f/unknown": []byte("never registered")})
	ctx := context.Background()
	conn, err := line.Dial(ctx, addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		key, want string
	}{{"f/good", "0.1;"}, {"f/bad", "bad-bytes("}, {"f/unknown", "unknown-file("}} {
		v, ver, got, err := readFile(ctx, conn, reg, tc.key, 0)
		if err != nil || ver != 3 || !strings.HasPrefix(v, tc.want) || !strings.HasSuffix(v, ";") || strings.Count(v, ";") != 1 {
			t.Errorf("%s: %q at %d, %v; want %q…", tc.key, v, ver, err, tc.want)
		}
		if tc.key == "f/good" && got != sum {
			t.Errorf("%s: sum %s, want %s", tc.key, got, sum)
		}
	}
	if _, _, _, err := readFile(ctx, conn, reg, "f/none", 0); !errors.Is(err, line.ErrNotFound) {
		t.Fatalf("a file that does not exist: %v", err)
	}
}
