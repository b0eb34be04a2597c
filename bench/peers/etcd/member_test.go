package main

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// TestMemberConfigIsDefault checks that a member runs with embed.NewConfig()
// changed only in its identity and addresses, plus the etcd binary's 300 ms
// slow-request warning threshold: nothing that would make etcd faster or
// slower than the etcd binary run with its defaults.
func TestMemberConfigIsDefault(t *testing.T) {
	m := memberFlags{Name: "m1", Dir: "/tmp/x", ClientURL: "http://127.0.0.1:1", PeerURL: "http://127.0.0.1:2",
		InitialCluster: "m1=http://127.0.0.1:2", Token: "tok"}
	got, err := memberConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.WarningUnaryRequestDuration != 300*time.Millisecond {
		t.Fatalf("warning threshold %v, want the binary's 300ms", got.WarningUnaryRequestDuration)
	}
	want := embed.NewConfig()
	if want.WarningUnaryRequestDuration != 0 {
		t.Logf("embed.NewConfig now sets the threshold itself (%v)", want.WarningUnaryRequestDuration)
	}
	client, _ := url.Parse(m.ClientURL)
	peer, _ := url.Parse(m.PeerURL)
	want.Name, want.Dir = m.Name, m.Dir
	want.ListenClientUrls, want.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	want.ListenPeerUrls, want.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	want.InitialCluster, want.InitialClusterToken = m.InitialCluster, m.Token
	want.ClusterState = embed.ClusterStateFlagNew
	want.WarningUnaryRequestDuration = got.WarningUnaryRequestDuration
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range gv.NumField() {
		f := gv.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() == reflect.Func {
			continue
		}
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("field %s differs from embed.NewConfig(): %v vs %v", f.Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	if got.UnsafeNoFsync {
		t.Fatal("fsync disabled")
	}
	if _, err := memberConfig(memberFlags{ClientURL: "://bad"}); err == nil {
		t.Fatal("bad URL accepted")
	}
}

// TestMemberConfigTLS: the TLS files turn on mutual TLS on both the client
// and the peer side, and nothing else; some of them without the others is
// refused.
func TestMemberConfigTLS(t *testing.T) {
	base := memberFlags{Name: "m1", Dir: "/tmp/x", ClientURL: "https://127.0.0.1:1", PeerURL: "https://127.0.0.1:2",
		InitialCluster: "m1=https://127.0.0.1:2", Token: "tok"}
	for _, tc := range []struct {
		name         string
		ca, crt, key string
		ok, tls      bool
	}{
		{"none", "", "", "", true, false},
		{"all three", "ca.crt", "m.crt", "m.key", true, true},
		{"no key", "ca.crt", "m.crt", "", false, false},
		{"only the CA", "ca.crt", "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.TLSCA, m.TLSCert, m.TLSKey = tc.ca, tc.crt, tc.key
			cfg, err := memberConfig(m)
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				return
			}
			for _, info := range []struct {
				side                      string
				cert, key, ca             string
				clientCertAuth, withFiles bool
			}{
				{"client", cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile, cfg.ClientTLSInfo.TrustedCAFile, cfg.ClientTLSInfo.ClientCertAuth, !cfg.ClientTLSInfo.Empty()},
				{"peer", cfg.PeerTLSInfo.CertFile, cfg.PeerTLSInfo.KeyFile, cfg.PeerTLSInfo.TrustedCAFile, cfg.PeerTLSInfo.ClientCertAuth, !cfg.PeerTLSInfo.Empty()},
			} {
				if info.withFiles != tc.tls || info.clientCertAuth != tc.tls || info.cert != tc.crt || info.key != tc.key || info.ca != tc.ca {
					t.Errorf("%s side: %+v", info.side, info)
				}
			}
		})
	}
}
