package daemon

import (
	"fmt"
	"os"
	"sync"

	"github.com/p2pd/p2pd/repo"
)

// tokenWatch holds the API token and reloads it from REPO/api.token when
// the file changes, so a token can be rotated (write a new one to the file)
// without restarting the daemon. It fails closed: once the file changes
// into something unusable (unsafe permissions, empty, unreadable, removed)
// no token is accepted, not even the previous one, until the file is
// fixed; the reason is logged once per change.
type tokenWatch struct {
	repo *repo.Repo

	mu    sync.Mutex  // guards the fields below
	token string      // "" while the file is unusable
	err   error       // why the file is unusable
	seen  os.FileInfo // the file as last loaded (nil: missing)
}

func newTokenWatch(r *repo.Repo) (*tokenWatch, error) {
	w := &tokenWatch{repo: r}
	st, err := os.Stat(r.File(repo.TokenFile))
	if err != nil {
		return nil, err
	}
	tok, err := r.Token()
	if err != nil {
		return nil, err
	}
	w.token, w.seen = tok, st
	return w, nil
}

// sameFile reports whether b is a as last seen: same file, size, time and
// mode (a chmod that makes the file safe again counts as a change).
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

// current returns the token in force, reloading it if the file changed, or
// the error that makes every request fail.
func (w *tokenWatch) current() (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	path := w.repo.File(repo.TokenFile)
	st, err := os.Stat(path)
	if err != nil {
		st = nil
	}
	if sameFile(w.seen, st) {
		return w.token, w.err
	}
	w.seen = st
	tok, err := w.repo.Token()
	if err != nil {
		w.token = ""
		w.err = fmt.Errorf("the API token file %s changed and cannot be used, so no token is accepted until it is fixed: %w", path, err)
		log.Errorw("api token file changed and cannot be used: refusing every API request until it is fixed (the previous token no longer works either)", "file", path, "err", err)
		return "", w.err
	}
	if w.err != nil {
		log.Infow("api token file usable again: API requests are accepted", "file", path)
	} else {
		log.Infow("api token reloaded", "file", path)
	}
	w.token, w.err = tok, nil
	return w.token, nil
}
