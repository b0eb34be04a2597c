package wire

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// readInto runs c's reader loop for calls until c fails.
func readInto(c *Conn, calls *Calls) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		for {
			env, err := c.Recv()
			if err != nil {
				calls.Fail(err)
				return
			}
			calls.Deliver(env)
		}
	}()
	return done
}

// reverseReplier reads n requests and answers them in reverse order, so
// replies can only reach their callers through their ids.
func reverseReplier(n int) func(*Conn) error {
	return func(c *Conn) error {
		for {
			var batch []Envelope
			for len(batch) < n {
				env, err := c.Recv()
				if err != nil {
					return err
				}
				batch = append(batch, env.Clone())
			}
			for i := len(batch) - 1; i >= 0; i-- {
				var req Request
				if err := batch[i].Decode(&req); err != nil {
					return err
				}
				if err := c.Send(KindReply, batch[i].ID, &Reply{Index: req.Seq, Msg: req.Key}); err != nil {
					return err
				}
			}
			if err := c.Flush(); err != nil {
				return err
			}
		}
	}
}

func TestCallsManyInFlight(t *testing.T) {
	const n = 64
	s := startServer(t, serverConfig{handle: reverseReplier(n)})
	c := dial(t, s.addr())
	var calls Calls
	done := readInto(c, &calls)

	for round := range 3 {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seq := uint64(round*n + i)
				env, err := calls.Call(context.Background(), c, KindRequest, &Request{Op: OpGet, Key: "k", Seq: seq})
				if err != nil {
					t.Error(err)
					return
				}
				var r Reply
				if err := env.Decode(&r); err != nil {
					t.Error(err)
					return
				}
				if env.Kind != KindReply || r.Index != seq {
					t.Errorf("call %d got %s with index %d", seq, env.Kind, r.Index)
				}
			}()
		}
		wg.Wait()
	}
	if calls.Len() != 0 {
		t.Errorf("%d calls still pending", calls.Len())
	}
	c.Close()
	<-done
}

func TestCallsFailOnConnDeath(t *testing.T) {
	const n = 10
	s := startServer(t, serverConfig{handle: reverseReplier(n + 1)}) // never answers n calls
	c := dial(t, s.addr())
	var calls Calls
	done := readInto(c, &calls)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := calls.Call(context.Background(), c, KindRequest, &Request{Op: OpGet, Key: "k"})
			errs <- err
		}()
	}
	// Kill the connection from the server side once all n are pending.
	waitPending(t, &calls, n)
	s.closeConns(1)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("a call succeeded on a dead connection")
		}
	}
	<-done
	if _, _, err := calls.Start(); err == nil {
		t.Error("Start after Fail succeeded")
	}
	s.result(t)
}

// waitPending blocks until calls has n pending calls. It polls only to
// wait, never to judge time.
func waitPending(t *testing.T, calls *Calls, n int) {
	t.Helper()
	for calls.Len() < n {
		runtime.Gosched()
	}
}

func TestCallsUnit(t *testing.T) {
	var calls Calls
	id1, ch1, err := calls.Start()
	if err != nil {
		t.Fatal(err)
	}
	id2, ch2, _ := calls.Start()
	if id1 == 0 || id1 == id2 {
		t.Fatalf("ids %d, %d", id1, id2)
	}
	body := []byte{0xa1, 'x'}
	if !calls.Deliver(Envelope{Kind: KindReply, ID: id1, Body: body}) {
		t.Fatal("Deliver to a pending call reported false")
	}
	body[1] = 'y' // the reader reuses its buffer
	r := <-ch1
	if r.Err != nil || string(r.Env.Body) != "\xa1x" {
		t.Fatalf("got %+v, want a private copy of the body", r)
	}
	if calls.Deliver(Envelope{ID: id1}) {
		t.Fatal("second Deliver for the same id reported true")
	}
	calls.Cancel(id2)
	if calls.Deliver(Envelope{ID: id2}) {
		t.Fatal("Deliver after Cancel reported true")
	}
	_, ch3, _ := calls.Start()
	calls.Fail(nil)
	if r := <-ch3; !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("pending call got %v, want ErrClosed", r.Err)
	}
	select {
	case r := <-ch2:
		t.Fatalf("cancelled call received %+v", r)
	default:
	}
	calls.Fail(errNotMember) // only the first error sticks
	if _, _, err := calls.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Fail: %v", err)
	}

	var wrap Calls
	wrap.next = 1<<64 - 1
	if id, _, _ := wrap.Start(); id == 0 {
		t.Fatal("wrapped to id 0")
	}
}

func TestCallContextCancel(t *testing.T) {
	s := startServer(t, serverConfig{handle: reverseReplier(2)}) // never answers one call
	c := dial(t, s.addr())
	var calls Calls
	done := readInto(c, &calls)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitPending(t, &calls, 1)
		cancel()
	}()
	if _, err := calls.Call(ctx, c, KindRequest, &Request{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if calls.Len() != 0 {
		t.Fatal("cancelled call still pending")
	}
	c.Close()
	<-done
}
