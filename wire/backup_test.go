package wire

// This file tests the backup messages' encoding (backup.go): every field
// survives a round trip, and the limits are what a default frame can carry.
// It runs on the test's goroutine.

import (
	"reflect"
	"testing"
)

// fullBackupChunk sets every field of a BackupChunk.
func fullBackupChunk() *BackupChunk {
	return &BackupChunk{
		Code: CodeOK, Msg: "m", Stream: 5, Seq: 9, Index: 1 << 35, Slot: 1 << 33, Keys: 12, Bytes: 1 << 20,
		Digest: "c0ffee", Data: []byte("F k 1 v 0000\n"), CRC: 0xdeadbeef, Last: true, Size: 1 << 30,
		FileCRC: 0xfeedface, MasterID: 3, MasterAddr: "127.0.0.1:7103",
	}
}

func TestBackupMessagesRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"request", &BackupRequest{Consistency: Stale, MinIndex: 1 << 50, Chunk: MaxBackupChunk}},
		{"request zero", &BackupRequest{}},
		{"ask", &BackupAsk{Stream: 1 << 60, Seq: 1}},
		{"chunk", fullBackupChunk()},
		{"refusal", &BackupChunk{Code: CodeBusy, Msg: "too many backups"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(tt.v).Elem()).Interface()
			if err := Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.v) {
				t.Fatalf("got %+v, want %+v", got, tt.v)
			}
		})
	}
}

// TestBackupChunkFitsFrame: the largest chunk, with every other field
// set, fits a frame of the default size.
func TestBackupChunkFitsFrame(t *testing.T) {
	ch := fullBackupChunk()
	ch.Data = make([]byte, MaxBackupChunk)
	if _, err := AppendMessage(nil, KindBackupChunk, 1<<60, ch, 0); err != nil {
		t.Fatal(err)
	}
}
