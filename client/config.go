package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/version"
)

// EnvRepo is the environment variable naming the default repo.
const EnvRepo = "P2PD_REPO"

// Defaults for the Config fields left zero.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultDialTimeout = 3 * time.Second
)

// Config says which daemon to talk to and how. The zero Config means the
// daemon of the default repo ($P2PD_REPO, else ~/.p2pd), authenticated with
// that repo's token.
type Config struct {
	// APIAddr is the control API's multiaddr: /ip4|ip6|dns/HOST/tcp/PORT or
	// /unix/PATH. Empty: read REPO/api whenever a new connection is made, so
	// a daemon restarted on another port or socket is found again.
	APIAddr string
	// Repo is the repo directory to read the API address and token from.
	// Empty: $P2PD_REPO, else ~/.p2pd.
	Repo string
	// Token is the bearer token. Set at most one of Token and TokenFile;
	// with neither, REPO/api.token is used.
	Token string
	// TokenFile is a file holding the bearer token. It is checked before
	// every request and re-read when it changes (and once more when the
	// daemon refuses the token), so a rotated token needs no new client.
	TokenFile string
	// UserAgent is sent with every request. Empty: "p2pd-client/<version>".
	UserAgent string
	// Timeout bounds each request that is not a stream, from sending it to
	// reading the whole answer (Find gets its search time on top).
	// Zero: DefaultTimeout. Streams (events, foreground tunnels) are bounded
	// only by their context.
	Timeout time.Duration
	// DialTimeout bounds connecting to the API. Zero: DefaultDialTimeout.
	DialTimeout time.Duration
}

// validate rejects settings that cannot work.
func (c *Config) validate() error {
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("client config sets both Token and TokenFile: set one")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("client config: negative Timeout %s", c.Timeout)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("client config: negative DialTimeout %s", c.DialTimeout)
	}
	if c.APIAddr != "" {
		if _, err := ParseAPIAddr(c.APIAddr); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) repoPath() (string, error) {
	if c.Repo != "" {
		return c.Repo, nil
	}
	if p := os.Getenv(EnvRepo); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the default repo: %w (set Repo or %s)", err, EnvRepo)
	}
	return filepath.Join(home, ".p2pd"), nil
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

func (c *Config) userAgent() string {
	if c.UserAgent != "" {
		return c.UserAgent
	}
	return "p2pd-client/" + version.Version
}

// tokens returns the token source the config describes.
func (c *Config) tokens() (*tokenSource, error) {
	switch {
	case c.Token != "":
		return &tokenSource{static: c.Token}, nil
	case c.TokenFile != "":
		return &tokenSource{path: c.TokenFile}, nil
	}
	repo, err := c.repoPath()
	if err != nil {
		return nil, err
	}
	return &tokenSource{path: filepath.Join(repo, api.TokenFile)}, nil
}

// Endpoint is a parsed API address.
type Endpoint struct {
	// Multiaddr is the address as given.
	Multiaddr string
	// Network is "tcp" or "unix".
	Network string
	// Address is what to dial: HOST:PORT, or the socket's path.
	Address string
}

// resolve finds the API address: APIAddr, or the one in the repo's api
// file. A missing api file means no daemon runs for the repo.
func (c *Config) resolve() (Endpoint, error) {
	if c.APIAddr != "" {
		return ParseAPIAddr(c.APIAddr)
	}
	repo, err := c.repoPath()
	if err != nil {
		return Endpoint{}, err
	}
	path := filepath.Join(repo, api.APIFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("no %s file", path)
		}
		return Endpoint{}, &UnreachableError{Repo: repo, Err: err}
	}
	ep, err := ParseAPIAddr(strings.TrimSpace(string(b)))
	if err != nil {
		return Endpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	return ep, nil
}

// ParseAPIAddr checks an API multiaddr (/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT
// or /unix/PATH) and says how to dial it.
func ParseAPIAddr(s string) (Endpoint, error) {
	bad := fmt.Errorf("invalid API address %q: want /ip4/HOST/tcp/PORT or /unix/PATH", s)
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("invalid API address %q: %w", s, err)
	}
	if p, err := m.ValueForProtocol(ma.P_UNIX); err == nil {
		if len(m) != 1 {
			return Endpoint{}, bad
		}
		return Endpoint{Multiaddr: s, Network: "unix", Address: p}, nil
	}
	if len(m) != 2 {
		return Endpoint{}, bad
	}
	var host string
	switch m[0].Protocol().Code {
	case ma.P_IP4, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		host = m[0].Value()
	case ma.P_IP6:
		host = "[" + m[0].Value() + "]"
	default:
		return Endpoint{}, bad
	}
	if m[1].Protocol().Code != ma.P_TCP {
		return Endpoint{}, bad
	}
	return Endpoint{Multiaddr: s, Network: "tcp", Address: host + ":" + m[1].Value()}, nil
}

// tokenSource yields the bearer token: a fixed one, or the content of a
// file, re-read when the file's modification time or size changes.
type tokenSource struct {
	static string
	path   string

	mu    sync.Mutex // guards the cached token and the file state it came from
	mtime time.Time
	size  int64
	token string
}

func (t *tokenSource) fromFile() bool { return t.static == "" }

func (t *tokenSource) get() (string, error) {
	if !t.fromFile() {
		return t.static, nil
	}
	st, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("reading the API token: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && st.ModTime().Equal(t.mtime) && st.Size() == t.size {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("reading the API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("API token file %s is empty", t.path)
	}
	t.token, t.mtime, t.size = tok, st.ModTime(), st.Size()
	return tok, nil
}

// invalidate forgets the cached token, so the next get re-reads the file
// even if it looks unchanged (a rewrite within the file system's time
// granularity keeps the same modification time).
func (t *tokenSource) invalidate() {
	t.mu.Lock()
	t.token = ""
	t.mu.Unlock()
}
