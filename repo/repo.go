// Package repo manages a p2pd node's state on disk: the directory (mode
// 0700) holding the identity key, the settings, the API token, the running
// daemon's API address and the persisted tunnels.
//
// A repo is created by Init and opened by Open. Files that hold secrets
// (identity.key, api.token) must be private to the owner: a repo whose key
// file is readable by others, or whose key does not decode, is an error and is
// never silently replaced.
//
// One process at a time uses a repo: the daemon, `p2pd chat --repo` and
// `p2pd init` take its lock (Lock), which the kernel drops when the process
// ends. The daemon is the only writer of api and tunnels.json.
package repo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pd/p2pd/api"
)

// Names of the files inside a repo.
const (
	KeyFile     = "identity.key"
	ConfigFile  = "config.json"
	TunnelsFile = "tunnels.json"
	APIFile     = api.APIFile
	TokenFile   = api.TokenFile
)

// EnvRepo names the environment variable that selects the repo when no
// --repo flag is given.
const EnvRepo = "P2PD_REPO"

// ErrNotInitialized is returned by Open when the directory holds no repo.
var ErrNotInitialized = errors.New("repo not initialized")

// DefaultPath is $P2PD_REPO, or ~/.p2pd.
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvRepo); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the default repo: %w (set --repo or %s)", err, EnvRepo)
	}
	return filepath.Join(home, ".p2pd"), nil
}

// Repo is an opened repo directory.
type Repo struct {
	path string
}

// Path is the repo's directory.
func (r *Repo) Path() string { return r.path }

// File returns the path of name inside the repo.
func (r *Repo) File(name string) string { return filepath.Join(r.path, name) }

// Init creates the repo at path if it does not exist yet, and any of its
// files that are missing: a fresh Ed25519 identity, a random API token and
// the default settings. Existing files are kept (and checked). It holds the
// repo's lock meanwhile, and fails with a *LockedError when a daemon (or
// chat) holds it.
func Init(path string) (*Repo, error) {
	if path == "" {
		return nil, errors.New("repo path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("repo path %q: %w", path, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("creating repo %s: %w", abs, err)
	}
	r := &Repo{path: abs}
	if err := r.checkDir(); err != nil {
		return nil, err
	}
	// Never add files under a running daemon or chat.
	l, err := r.Lock(HolderInit)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	if _, err := os.Stat(r.File(KeyFile)); errors.Is(err, fs.ErrNotExist) {
		if err := r.writeNewKey(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(r.File(TokenFile)); errors.Is(err, fs.ErrNotExist) {
		if err := r.writeNewToken(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(r.File(ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		if err := r.SaveConfig(DefaultConfig()); err != nil {
			return nil, err
		}
	}
	// Prove the identity decodes now rather than at first use.
	if _, err := r.Identity(); err != nil {
		return nil, err
	}
	return r, nil
}

// Open opens an existing repo. It fails with ErrNotInitialized when path
// holds no identity key.
func Open(path string) (*Repo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("repo path %q: %w", path, err)
	}
	r := &Repo{path: abs}
	if _, err := os.Stat(r.File(KeyFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (run `p2pd init --repo %s`)", abs, ErrNotInitialized, path)
		}
		return nil, fmt.Errorf("opening repo %s: %w", abs, err)
	}
	if err := r.checkDir(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repo) checkDir() error {
	st, err := os.Stat(r.path)
	if err != nil {
		return fmt.Errorf("opening repo %s: %w", r.path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("repo %s is not a directory", r.path)
	}
	// Probe that we may write here; a read-only repo cannot hold the api file.
	f, err := os.CreateTemp(r.path, ".probe-*")
	if err != nil {
		return fmt.Errorf("repo %s is not writable: %w", r.path, err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// Identity loads the node's private key. The file must be private to its
// owner (no group or other permission bits) and hold a libp2p
// protobuf-encoded private key.
func (r *Repo) Identity() (crypto.PrivKey, error) {
	path := r.File(KeyFile)
	b, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	sk, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity key %s is corrupt (%w); restore it from a backup, or move it away and run `p2pd init` to make a new identity (a new peer ID)", path, err)
	}
	return sk, nil
}

// PeerID is the peer ID of the repo's identity.
func (r *Repo) PeerID() (peer.ID, error) {
	sk, err := r.Identity()
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(sk)
}

// Token loads the API bearer token.
func (r *Repo) Token() (string, error) {
	b, err := readPrivate(r.File(TokenFile))
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("api token %s is empty", r.File(TokenFile))
	}
	return tok, nil
}

// readPrivate reads a secret file after checking that only its owner may
// read it.
func readPrivate(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %#o, want 0600: it holds a secret; fix with `chmod 600 %s`", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

func (r *Repo) writeNewKey() error {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating identity: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("encoding identity: %w", err)
	}
	return writeFileAtomic(r.File(KeyFile), b, 0o600)
}

func (r *Repo) writeNewToken() error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("generating api token: %w", err)
	}
	return writeFileAtomic(r.File(TokenFile), []byte(hex.EncodeToString(b[:])+"\n"), 0o600)
}

// WriteAPIAddr records the running daemon's API address.
func (r *Repo) WriteAPIAddr(addr string) error {
	return writeFileAtomic(r.File(APIFile), []byte(addr+"\n"), 0o600)
}

// RemoveAPIAddr removes the api file at shutdown, but only if it still names
// addr: a second daemon that took over the repo keeps its own.
func (r *Repo) RemoveAPIAddr(addr string) error {
	b, err := os.ReadFile(r.File(APIFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", r.File(APIFile), err)
	}
	if strings.TrimSpace(string(b)) != addr {
		return nil
	}
	if err := os.Remove(r.File(APIFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", r.File(APIFile), err)
	}
	return nil
}

// WriteJSON writes v as indented JSON to the repo file name, atomically.
func (r *Repo) WriteJSON(name string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	return writeFileAtomic(r.File(name), buf.Bytes(), 0o600)
}

// WriteFile writes data to the repo file name (mode 0600), atomically: a
// crash leaves the old file or the new one, never half of one.
func (r *Repo) WriteFile(name string, data []byte) error {
	return writeFileAtomic(r.File(name), data, 0o600)
}

// ReadJSON decodes the repo file name into v. A missing file reports
// fs.ErrNotExist (wrapped).
func (r *Repo) ReadJSON(name string, v any) error {
	b, err := os.ReadFile(r.File(name))
	if err != nil {
		return fmt.Errorf("reading %s: %w", r.File(name), err)
	}
	if err := api.Decode(b, v); err != nil {
		return fmt.Errorf("%s is not valid: %w", r.File(name), err)
	}
	return nil
}

// tempPattern is the name pattern of writeFileAtomic's temporary files.
func tempPattern(name string) string { return "." + name + ".tmp-*" }

// RemoveTempFiles removes the temporary files that writes interrupted by a
// crash left in the repo, and returns their names. Call it only while
// holding the repo's lock: another process's write in progress looks the
// same.
func (r *Repo) RemoveTempFiles() ([]string, error) {
	var removed []string
	var errs []error
	for _, pattern := range []string{tempPattern("*"), ".probe-*"} {
		names, err := filepath.Glob(filepath.Join(r.path, pattern))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing leftover temporary file: %w", err))
				continue
			}
			removed = append(removed, filepath.Base(n))
		}
	}
	return removed, errors.Join(errs...)
}

// MoveAside renames the repo file name to NAME.bad-TIMESTAMP (UTC, e.g.
// tunnels.json.bad-20260102T150405Z), so that a file p2pd cannot read is
// kept for the user rather than overwritten. It returns the new path.
func (r *Repo) MoveAside(name string, now time.Time) (string, error) {
	base := r.File(name) + ".bad-" + now.UTC().Format("20060102T150405Z")
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(r.File(name), dst); err != nil {
		return "", fmt.Errorf("moving %s aside: %w", r.File(name), err)
	}
	return dst, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers see the old or the new file, never half.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
