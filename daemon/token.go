package daemon

import (
	"os"
	"sync"
	"time"

	"github.com/p2pd/p2pd/repo"
)

// tokenWatch holds the API token and reloads it from REPO/api.token when
// the file changes, so a token can be rotated (write a new one to the file)
// without restarting the daemon. If the file becomes unreadable the last
// good token stays in force and the problem is logged.
type tokenWatch struct {
	repo *repo.Repo

	mu    sync.Mutex // guards the fields below
	token string
	mtime time.Time
	size  int64
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
	w.token, w.mtime, w.size = tok, st.ModTime(), st.Size()
	return w, nil
}

// current returns the token in force, reloading it if the file changed.
func (w *tokenWatch) current() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, err := os.Stat(w.repo.File(repo.TokenFile))
	if err != nil || (st.ModTime().Equal(w.mtime) && st.Size() == w.size) {
		return w.token
	}
	tok, err := w.repo.Token()
	if err != nil {
		log.Errorw("api token file changed but cannot be used; keeping the previous token", "err", err)
		return w.token
	}
	w.token, w.mtime, w.size = tok, st.ModTime(), st.Size()
	log.Infow("api token reloaded")
	return w.token
}
