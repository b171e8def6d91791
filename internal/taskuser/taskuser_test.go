package taskuser

import "testing"

func TestDecide(t *testing.T) {
	cases := []struct {
		name            string
		root            bool
		uid, gid, count int
		want            Users
	}{
		{"not root, unset: pyrunner's own user", false, -1, -1, 0, Users{UID: -1, GID: -1, Count: 1}},
		{"not root, a uid: shared, the gid follows", false, 1000, -1, 0, Users{UID: 1000, GID: 1000, Count: 1}},
		{"not root, a count: the uids, never one each", false, 1000, 50, 8, Users{UID: 1000, GID: 50, Count: 8}},
		{"root, unset: a claimed block, one uid each", true, -1, -1, 0, Users{UID: defaultUID, GID: defaultUID, Count: defaultCount, OwnUID: true}},
		{"root, unset with a count: a block that size", true, -1, -1, 16, Users{UID: defaultUID, GID: defaultUID, Count: 16, OwnUID: true}},
		{"root, a uid alone: shared by all tasks", true, 5000, -1, 0, Users{UID: 5000, GID: 5000, Count: 1}},
		{"root, a uid and a count: one uid each", true, 5000, 6000, 4, Users{UID: 5000, GID: 6000, Count: 4, OwnUID: true}},
		{"root, uid 0: root, shared", true, 0, -1, 4, Users{UID: 0, GID: 0, Count: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TMPDIR", t.TempDir())
			got, err := decide(tc.root, tc.uid, tc.gid, tc.count)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(got.Release)
			if (got.claim != nil) != (tc.root && tc.uid < 0) {
				t.Errorf("claim held: %v", got.claim != nil)
			}
			got.claim = nil
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestUIDBlocksAreClaimedOnce(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	first, f1, err := claimUIDBlock(defaultUID, 1024)
	if err != nil {
		t.Fatal(err)
	}
	second, f2, err := claimUIDBlock(defaultUID, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if first != defaultUID || second != defaultUID+1024 {
		t.Fatalf("blocks from %d and %d, want %d and %d", first, second, defaultUID, defaultUID+1024)
	}
	f1.Close() // the first instance exits: its block is free again
	third, f3, err := claimUIDBlock(defaultUID, 1024)
	if err != nil || third != defaultUID {
		t.Fatalf("after a release: %d, %v", third, err)
	}
	f2.Close()
	f3.Close()
}
