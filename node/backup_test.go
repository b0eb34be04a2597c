package node

// This file tests online backups on an in-process cluster (backup.go): a
// stream read whole decodes to the state at its index, and every limit a
// proxy controls is refused with its code. It runs on the test's
// goroutine; the nodes run their own.

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/wire"
)

// backupCall sends one backup message on c and returns its answer.
func backupCall(t *testing.T, c *wire.Conn, kind wire.Kind, id uint64, body any) wire.BackupChunk {
	t.Helper()
	if err := c.Send(kind, id, body); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	env, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var ch wire.BackupChunk
	if env.Kind != wire.KindBackupChunk || env.ID != id {
		t.Fatalf("answered %s %d, want %s %d", env.Kind, env.ID, wire.KindBackupChunk, id)
	}
	if err := env.Decode(&ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestBackupStream(t *testing.T) {
	n := startMaster(t)
	c := dialProxy(t, n)
	for i := range 300 {
		req := wire.Request{Op: wire.OpPut, Key: fmt.Sprintf("k%03d", i), Value: []byte(strings.Repeat("v", i))}
		if err := c.Send(wire.KindRequest, uint64(i+1), &req); err != nil {
			t.Fatal(err)
		}
	}
	c.Flush()
	for range 300 {
		if _, err := c.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	for _, level := range []wire.Consistency{wire.Linearizable, wire.Stale} {
		t.Run(level.String(), func(t *testing.T) {
			c := dialProxy(t, n)
			head := backupCall(t, c, wire.KindBackup, 1, &wire.BackupRequest{Consistency: level, Chunk: wire.MinBackupChunk})
			if head.Code != wire.CodeOK || head.Index < 300 || head.Keys != 300 || head.Stream == 0 {
				t.Fatalf("header %+v", head)
			}
			var file bytes.Buffer
			for seq := uint64(1); ; seq++ {
				ch := backupCall(t, c, wire.KindBackupAsk, 1+seq, &wire.BackupAsk{Stream: head.Stream, Seq: seq})
				if ch.Code != wire.CodeOK || ch.Seq != seq || len(ch.Data) > wire.MinBackupChunk || wal.Checksum(ch.Data) != ch.CRC {
					t.Fatalf("piece %d: %+v", seq, ch)
				}
				file.Write(ch.Data)
				if ch.Last {
					if ch.Size != uint64(file.Len()) || ch.FileCRC != crc32.Checksum(file.Bytes(), wal.CRC32C) {
						t.Fatalf("last piece says %d bytes %08x, got %d", ch.Size, ch.FileCRC, file.Len())
					}
					break
				}
			}
			m, meta, err := filestore.ReadSnapshot(&file, filestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if meta.Index != head.Index || meta.Slot != head.Slot || m.Len() != 300 || m.Digest() != head.Digest || len(meta.Config) == 0 {
				t.Fatalf("the stream decodes to %+v, %d keys, digest %s; header %+v", meta, m.Len(), m.Digest(), head)
			}
		})
	}
}

// TestBackupLimits: what a proxy controls is bounded, and each refusal
// says why with its code.
func TestBackupLimits(t *testing.T) {
	n := startMaster(t)
	tests := []struct {
		name string
		run  func(c *wire.Conn) wire.BackupChunk
		code wire.Code
		msg  string
	}{
		{"chunk too small", func(c *wire.Conn) wire.BackupChunk {
			return backupCall(t, c, wire.KindBackup, 1, &wire.BackupRequest{Chunk: wire.MinBackupChunk - 1})
		}, wire.CodeBadRequest, "chunk of"},
		{"chunk too large", func(c *wire.Conn) wire.BackupChunk {
			return backupCall(t, c, wire.KindBackup, 1, &wire.BackupRequest{Chunk: wire.MaxBackupChunk + 1})
		}, wire.CodeBadRequest, "chunk of"},
		{"unknown level", func(c *wire.Conn) wire.BackupChunk {
			return backupCall(t, c, wire.KindBackup, 1, &wire.BackupRequest{Consistency: 9})
		}, wire.CodeBadRequest, "consistency"},
		{"no such stream", func(c *wire.Conn) wire.BackupChunk {
			return backupCall(t, c, wire.KindBackupAsk, 1, &wire.BackupAsk{Stream: 1 << 40, Seq: 1})
		}, wire.CodeBadRequest, "no backup stream"},
		{"another connection's stream", func(c *wire.Conn) wire.BackupChunk {
			other := dialProxy(t, n)
			defer other.Close()
			head := backupCall(t, other, wire.KindBackup, 1, &wire.BackupRequest{Consistency: wire.Stale})
			return backupCall(t, c, wire.KindBackupAsk, 2, &wire.BackupAsk{Stream: head.Stream, Seq: 1})
		}, wire.CodeBadRequest, "no backup stream"},
		{"piece out of order", func(c *wire.Conn) wire.BackupChunk {
			head := backupCall(t, c, wire.KindBackup, 1, &wire.BackupRequest{Consistency: wire.Stale})
			return backupCall(t, c, wire.KindBackupAsk, 2, &wire.BackupAsk{Stream: head.Stream, Seq: 2})
		}, wire.CodeBadRequest, "asked for piece 2"},
		{"too many backups", func(c *wire.Conn) wire.BackupChunk {
			for i := range MaxBackups {
				if h := backupCall(t, c, wire.KindBackup, uint64(1+i), &wire.BackupRequest{Consistency: wire.Stale}); h.Code != wire.CodeOK {
					t.Fatalf("backup %d: %+v", i, h)
				}
			}
			return backupCall(t, c, wire.KindBackup, 9, &wire.BackupRequest{Consistency: wire.Stale})
		}, wire.CodeBusy, "already streams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waitNoBackups(t, n) // the streams of the connections before are gone
			c := dialProxy(t, n)
			defer c.Close()
			ch := tt.run(c)
			if ch.Code != tt.code || !strings.Contains(ch.Msg, tt.msg) {
				t.Fatalf("got %s %q, want %s %q", ch.Code, ch.Msg, tt.code, tt.msg)
			}
		})
	}
}

// waitNoBackups waits until n streams no backup: a connection's streams
// end once its server goroutine sees it closed.
func waitNoBackups(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.bk.mu.Lock()
		left := len(n.bk.streams)
		n.bk.mu.Unlock()
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backup streams left after their connections closed", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
