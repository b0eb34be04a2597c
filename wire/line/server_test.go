package line

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// testServer answers the line protocol from a map over real TCP, using this
// package's Reader and Writer the way the proxy will. Keys under "err/" are
// answered "ERR <rest of key> injected", to test error replies.
type testServer struct {
	ln  net.Listener
	lim Limits
	wg  sync.WaitGroup

	mu    sync.Mutex
	files map[string]testFile
	index uint64
	conns map[net.Conn]struct{}
	// The configuration MEMBER commands read and change, as a master
	// would: in id order, ConfigSlot counting the changes.
	members    []Member
	configSlot uint64
}

type testFile struct {
	value   []byte
	version uint64
}

func startTestServer(tb testing.TB, lim Limits) *testServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &testServer{ln: ln, lim: lim, files: map[string]testFile{}, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	tb.Cleanup(s.close)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handle(conn)
	}
}

func (s *testServer) handle(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	r := NewReader(bufio.NewReaderSize(conn, 4096), s.lim)
	w := NewWriter(bufio.NewWriter(conn))
	for {
		req, err := r.ReadRequest()
		if err != nil {
			var pe *ProtoError
			if !errors.As(err, &pe) {
				return // EOF or a broken connection: nobody to answer
			}
			w.ReplyError(pe)
			if pe.Fatal {
				w.Flush()
				return
			}
		} else {
			s.apply(w, req)
			if req.Cmd == CmdQuit {
				w.Flush()
				return
			}
		}
		// Flush once per batch: only when no pipelined request is waiting.
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

func (s *testServer) apply(w *Writer, req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code, ok := strings.CutPrefix(req.Key, "err/"); ok {
		w.Err(code, "injected")
		return
	}
	f, exists := s.files[req.Key]
	switch req.Cmd {
	case CmdPut, CmdAppend, CmdCAS:
		if req.Cmd == CmdCAS && req.Version != f.version {
			w.Conflict(f.version)
			return
		}
		s.index++
		v := req.Value
		if req.Cmd == CmdAppend {
			v = append(slices.Clip(f.value), v...)
		}
		s.files[req.Key] = testFile{value: bytes.Clone(v), version: s.index}
		w.OKIndex(s.index)
	case CmdDel:
		if !exists {
			w.NotFound()
			return
		}
		s.index++
		delete(s.files, req.Key)
		w.OKIndex(s.index)
	case CmdGet:
		switch {
		case req.MinIndex > s.index:
			w.Err(CodeTimeout, "index "+strconv.FormatUint(req.MinIndex, 10)+" not reached")
		case !exists:
			w.NotFound()
		default:
			w.Value(f.value, f.version)
		}
	case CmdStat:
		if !exists {
			w.NotFound()
			return
		}
		w.Stat(uint64(len(f.value)), f.version)
	case CmdList:
		var keys []string
		for k := range s.files {
			if strings.HasPrefix(k, req.Prefix) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		w.Keys(keys)
	case CmdConsistency:
		w.OK()
	case CmdStatus:
		w.Nodes([]NodeStatus{
			{ID: 1, Addr: "127.0.0.1:7101", Role: "master", Ballot: "3.1", Commit: s.index, Applied: s.index},
			{ID: 2, Addr: "127.0.0.1:7102", Role: "follower", Ballot: "3.1", Commit: s.index, Applied: s.index, Extra: map[string]string{"lag": "0"}},
			{ID: 3, Addr: "127.0.0.1:7103", Role: "down"},
		})
	case CmdStats:
		w.Stats([]Stat{{"files", strconv.Itoa(len(s.files))}, {"index", strconv.FormatUint(s.index, 10)}})
	case CmdPing:
		w.Pong()
	case CmdQuit:
		w.Bye()
	case CmdHelp:
		w.Help()
	case CmdMemberList:
		w.Members(s.members, s.configSlot)
	case CmdMemberAdd, CmdMemberRemove, CmdMemberPromote:
		s.changeMember(w, req)
	}
}

// changeMember applies a membership change the way the node does: a change
// already in force answers OK without a new configuration.
func (s *testServer) changeMember(w *Writer, req Request) {
	i := slices.IndexFunc(s.members, func(m Member) bool { return m.ID == req.MemberID })
	switch {
	case req.Cmd == CmdMemberAdd && i >= 0 && s.members[i].Addr != req.MemberAddr:
		w.Err(CodeBadRequest, "member "+strconv.FormatUint(req.MemberID, 10)+" is at "+s.members[i].Addr)
		return
	case req.Cmd == CmdMemberPromote && i < 0:
		w.Err(CodeBadRequest, "no member "+strconv.FormatUint(req.MemberID, 10))
		return
	case req.Cmd == CmdMemberAdd && i < 0:
		s.members = append(s.members, Member{ID: req.MemberID, Addr: req.MemberAddr})
		slices.SortFunc(s.members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
		s.configSlot++
	case req.Cmd == CmdMemberRemove && i >= 0:
		s.members = slices.Delete(s.members, i, i+1)
		s.configSlot++
	case req.Cmd == CmdMemberPromote && !s.members[i].Voter:
		s.members[i].Voter = true
		s.configSlot++
	}
	w.OKIndex(s.configSlot)
}
