package nemesis

import (
	"slices"
	"testing"

	"synod/wire"
)

// TestMembershipFaultsByDefault: the membership faults are in the default
// mix, parse by name, and stay out of mixed's pool of single faults.
func TestMembershipFaultsByDefault(t *testing.T) {
	for _, k := range Membership {
		if !slices.Contains(AllFaults, k) || !slices.Contains(DefaultConfig().Faults, k) {
			t.Errorf("%s is not in the default mix", k)
		}
		if slices.Contains(Singles, k) {
			t.Errorf("%s is among the single faults mixed overlaps", k)
		}
	}
	got, err := ParseFaults("replace-member,grow-shrink")
	if err != nil || !slices.Equal(got, []FaultKind{ReplaceMember, GrowShrink}) {
		t.Fatalf("ParseFaults = %v, %v", got, err)
	}
}

func TestMemberVoter(t *testing.T) {
	ms := []wire.Member{{ID: 1, Voter: true}, {ID: 6}}
	if !memberVoter(ms, 1) || memberVoter(ms, 6) || memberVoter(ms, 7) {
		t.Fatal("memberVoter: 1 votes, 6 is a learner, 7 is no member")
	}
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a\nb\n\n": "b", "a\nb": "b"} {
		if got := lastLine(in); got != want {
			t.Errorf("lastLine(%q) = %q, want %q", in, got, want)
		}
	}
}
