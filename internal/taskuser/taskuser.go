// Package taskuser decides who task processes run as: Decide, once at
// start, from N8N_PYTHON_TASK_UID, _GID and _UID_COUNT and whether
// pyrunner is root. Not root: pyrunner's own user, unless a uid is given.
// Root: by default a uid of its own for every live task process, from a
// block of uids that no other pyrunner on the machine holds (the Users
// returned keeps the claim on it until Release).
//
// It decides; the pool and the Python runtime carry the decision out.
package taskuser

import "os"

// defaultUID is the first of the uids a root pyrunner gives its tasks, one
// per live task process: a range no distribution or container runtime
// hands out, so no other process shares them.
const defaultUID, defaultCount = 1900000000, 1024

// Users is who tasks run as.
type Users struct {
	// UID and GID are the user and group; -1 keeps pyrunner's own.
	UID, GID int
	// Count is how many uids from UID on the tasks use: 1 when all of
	// them share UID.
	Count int
	// OwnUID: each live task process runs as a uid (and gid) of its own,
	// taken from UID .. UID+Count-1, so that no task can signal, trace or
	// read another. Only root can do that.
	OwnUID bool

	claim *os.File // holds the block of uids this pyrunner claimed
}

// Decide turns the settings (uid and gid -1 when unset, count 0) into the
// users tasks run as. Not root: the uid and gid given, or pyrunner's own,
// one shared by all tasks. Root: an explicit uid alone (count 1) is
// shared by all tasks; by default each task process gets a uid of its
// own from a block of count (1024 when 0) claimed from 1900000000 on. The
// gid follows the uid unless given.
func Decide(uid, gid, count int) (Users, error) {
	return decide(os.Geteuid() == 0, uid, gid, count)
}

func decide(root bool, uid, gid, count int) (Users, error) {
	u := Users{UID: uid, GID: gid, Count: count}
	if root && u.UID < 0 {
		if u.Count == 0 {
			u.Count = defaultCount
		}
		var err error
		if u.UID, u.claim, err = claimUIDBlock(defaultUID, u.Count); err != nil {
			return Users{}, err
		}
	}
	if u.Count == 0 {
		u.Count = 1
	}
	if u.UID >= 0 && u.GID < 0 {
		u.GID = u.UID
	}
	u.OwnUID = root && u.UID > 0 && u.Count > 1
	return u, nil
}

// Release gives the block of uids back, once no task runs any more.
func (u Users) Release() {
	if u.claim != nil {
		u.claim.Close()
	}
}
