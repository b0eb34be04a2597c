package main

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"synod/wire/line"
)

// FuzzParseVerbArgs checks that any argument list gives either checked
// arguments or a usage error, never a panic or an invalid key.
func FuzzParseVerbArgs(f *testing.F) {
	f.Add(uint8(0), "a\x00b")
	f.Add(uint8(1), "k\x007\x00v")
	f.Add(uint8(2), "docs/\x00x")
	f.Add(uint8(3), "")
	f.Add(uint8(4), "a b\x00--json")
	verbs := make([]string, 0, len(argShapes))
	for v := range argShapes {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	f.Fuzz(func(t *testing.T, verb uint8, joined string) {
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		v := verbs[int(verb)%len(verbs)]
		a, err := parseVerbArgs(v, args)
		if err != nil {
			if exitCode(err) != exitUsage {
				t.Fatalf("%s %q: error %v with exit %d, want a usage error", v, args, err, exitCode(err))
			}
			return
		}
		if a.Key != "" && !line.ValidKey(a.Key, 0) {
			t.Fatalf("%s %q: accepted invalid key %q", v, args, a.Key)
		}
		if a.Prefix != "" && !line.ValidKey(a.Prefix, 0) {
			t.Fatalf("%s %q: accepted invalid prefix %q", v, args, a.Prefix)
		}
		if strings.Contains(argShapes[v], "KEY") && a.Key == "" {
			t.Fatalf("%s %q: no key", v, args)
		}
		if a.HasValue && !bytes.Equal(a.Value, []byte(args[len(args)-1])) {
			t.Fatalf("%s %q: value %q is not the last argument", v, args, a.Value)
		}
	})
}

// FuzzParseCpArgs checks cp's SRC DST parsing: one side is always a valid
// key, and a side is a key exactly when it was written with a colon.
func FuzzParseCpArgs(f *testing.F) {
	f.Add("photo.jpg", ":img/cat.jpg")
	f.Add(":a", "-")
	f.Add("-", ":")
	f.Add(":a b", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		src, dst, err := parseCpArgs([]string{a, b})
		if err != nil {
			if exitCode(err) != exitUsage {
				t.Fatalf("cp %q %q: exit %d, want a usage error", a, b, exitCode(err))
			}
			return
		}
		if !src.IsKey && !dst.IsKey {
			t.Fatalf("cp %q %q: accepted without a key", a, b)
		}
		for _, e := range []struct {
			arg string
			end cpEnd
		}{{a, src}, {b, dst}} {
			if e.end.IsKey != strings.HasPrefix(e.arg, ":") || (e.end.IsKey && !line.ValidKey(e.end.Key, 0)) {
				t.Fatalf("cp %q %q: side %q parsed as %+v", a, b, e.arg, e.end)
			}
			if e.end.String() != e.arg {
				t.Fatalf("side %q prints as %q", e.arg, e.end.String())
			}
		}
	})
}

// FuzzParseMemberArgs checks that `synod member` arguments give either a
// request every server accepts or a usage error, never a panic.
func FuzzParseMemberArgs(f *testing.F) {
	f.Add(uint8(0), "")
	f.Add(uint8(1), "4\x00127.0.0.1:7104")
	f.Add(uint8(2), "3")
	f.Add(uint8(3), "0")
	f.Add(uint8(1), "4\x00[::1]:65536")
	subs := []string{"list", "add", "remove", "promote"}
	f.Fuzz(func(t *testing.T, sub uint8, joined string) {
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		s := subs[int(sub)%len(subs)]
		a, err := parseMemberArgs(s, args)
		if err != nil {
			if exitCode(err) != exitUsage {
				t.Fatalf("%s %q: error %v with exit %d, want a usage error", s, args, err, exitCode(err))
			}
			return
		}
		req := line.Request{Cmd: map[string]line.Cmd{"list": line.CmdMemberList, "add": line.CmdMemberAdd,
			"remove": line.CmdMemberRemove, "promote": line.CmdMemberPromote}[s], MemberID: a.ID, MemberAddr: a.Addr}
		if _, err := line.AppendRequest(nil, req); err != nil {
			t.Fatalf("%s %q: accepted %+v, which the client refuses: %v", s, args, a, err)
		}
	})
}

// FuzzParseProxyNodes checks `synod proxy --nodes`: every entry it accepts
// is an id from 1 with an address, or a seed address, none given twice.
func FuzzParseProxyNodes(f *testing.F) {
	f.Add("1=127.0.0.1:7101,2=127.0.0.1:7102")
	f.Add("127.0.0.1:7101, 2=h:2")
	f.Add("=,=x,1=")
	f.Fuzz(func(t *testing.T, in string) {
		nodes, seeds, err := parseProxyNodes(in)
		if err != nil {
			return
		}
		if len(nodes)+len(seeds) == 0 {
			t.Fatalf("%q: nothing accepted without an error", in)
		}
		seen := map[string]bool{}
		for id, addr := range nodes {
			if id == 0 || addr == "" || seen[addr] {
				t.Fatalf("%q: replica %d at %q", in, id, addr)
			}
			seen[addr] = true
		}
		for _, addr := range seeds {
			if addr == "" || seen[addr] || strings.Contains(addr, ",") {
				t.Fatalf("%q: seed %q", in, addr)
			}
			seen[addr] = true
		}
	})
}
