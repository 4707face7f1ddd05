package quota

import (
	"slices"
	"testing"
)

// TestKeySlot pins the hash slots to those Redis computes (CLUSTER KEYSLOT).
func TestKeySlot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3 % 16384}, // the CRC-16/XMODEM check value
		{"foo", 12182},
		{"a", 15495},
		{"{a}x", 15495},
		{"x{a}y{b}", 15495},     // the first tag counts
		{"{}a", keySlot("{}a")}, // an empty tag hashes the whole key
		{"tollgate:{team:ml}:tokens:day:20261125", keySlot("team:ml")},
		{"other:{team:ml}:usd:month:202611", keySlot("team:ml")},
	}
	for _, tc := range tests {
		if got := keySlot(tc.key); got != tc.want {
			t.Errorf("keySlot(%q): got %d, want %d", tc.key, got, tc.want)
		}
	}
	if keySlot("{}a") == keySlot("{}b") {
		t.Errorf("keys with an empty tag share slot %d; want the whole key hashed", keySlot("{}a"))
	}
}

func TestSlotGroups(t *testing.T) {
	t.Parallel()
	keys := []string{"{a}1", "{b}1", "{a}2", "{c}1", "{b}2"} // slots 15495, 3300, 15495, 7365, 3300
	want := [][]int{{1, 4}, {3}, {0, 2}}
	got := slotGroups(keys)
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("slotGroups: got %v, want %v", got, want)
	}
}
