package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/p2pd/p2pd/api"
)

// Limits of the control API's connections.
const (
	// maxAPIConns caps the connections the API holds open at once. Past
	// it, the oldest connection that has not yet sent an authenticated
	// request is closed to make room; when every one has, the newcomer is
	// refused with 503.
	maxAPIConns = 256
	// apiHeaderTimeout bounds how long a client may take to send a
	// request's headers.
	apiHeaderTimeout = 10 * time.Second
	// apiBodyTimeout bounds how long a client may take to send a request's
	// body once its headers are in.
	apiBodyTimeout = 30 * time.Second
	// apiIdleTimeout closes a keep-alive connection that sends no new
	// request for this long.
	apiIdleTimeout = 2 * time.Minute
	// apiMaxHeaderBytes caps a request's headers; larger ones get 431.
	apiMaxHeaderBytes = 64 << 10
	// apiMaxBodyBytes caps a request's body.
	apiMaxBodyBytes = 1 << 20
)

// connKey is the context key under which the server's ConnContext stores
// the request's *apiConn.
type connKey struct{}

// apiConns wraps the API listener. It caps the connections open at once
// and makes sure connections that never authenticated cannot hold the API:
// a newcomer over the cap evicts the oldest unproven connection (one that
// has sent no request with the right token yet). Every accepted connection
// is an *apiConn.
type apiConns struct {
	net.Listener
	max int

	mu       sync.Mutex // guards the fields below
	open     int
	unproven []*apiConn // oldest first
}

func newAPIConns(ln net.Listener, max int) *apiConns {
	return &apiConns{Listener: ln, max: max}
}

// Accept returns the next connection, making room for it first.
func (l *apiConns) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ac := &apiConn{Conn: c, owner: l}
		l.mu.Lock()
		var evict *apiConn
		if l.open >= l.max && len(l.unproven) > 0 {
			evict = l.unproven[0]
			l.unproven = l.unproven[1:]
			evict.dropped = true
			l.open--
		}
		if l.open >= l.max {
			l.mu.Unlock()
			log.Warnw("api connection refused: every connection slot is held by an authenticated client", "max", l.max, "remote", c.RemoteAddr())
			refuse(c, http.StatusServiceUnavailable, api.CodeUnavailable,
				fmt.Sprintf("too many API connections (%d open, all authenticated): try again later", l.max))
			continue
		}
		l.open++
		l.unproven = append(l.unproven, ac)
		l.mu.Unlock()
		if evict != nil {
			log.Debugw("api connection evicted: it never authenticated and the connection cap is reached", "remote", evict.RemoteAddr())
			evict.Conn.Close()
		}
		return ac, nil
	}
}

// count returns how many connections are open.
func (l *apiConns) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// prove marks c as authenticated: it is never evicted.
func (l *apiConns) prove(c *apiConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.proven || c.dropped {
		return
	}
	c.proven = true
	l.removeUnproven(c)
}

// closed forgets c.
func (l *apiConns) closed(c *apiConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.dropped {
		return
	}
	c.dropped = true
	l.open--
	if !c.proven {
		l.removeUnproven(c)
	}
}

func (l *apiConns) removeUnproven(c *apiConn) {
	for i, u := range l.unproven {
		if u == c {
			l.unproven = append(l.unproven[:i], l.unproven[i+1:]...)
			return
		}
	}
}

// apiConn is one API connection. Its Write turns the plain-text error
// answers net/http writes by itself into the API's JSON error shape.
type apiConn struct {
	net.Conn
	owner *apiConns

	// Guarded by owner.mu.
	proven, dropped bool

	closeOnce sync.Once
}

// Close closes the connection and frees its slot.
func (c *apiConn) Close() error {
	c.closeOnce.Do(func() { c.owner.closed(c) })
	return c.Conn.Close()
}

// Write passes p on, except net/http's own error answers, which it
// rewrites (see libraryError).
func (c *apiConn) Write(p []byte) (int, error) {
	if status, text, ok := libraryError(p); ok {
		if _, err := c.Conn.Write(errorAnswer(status, api.CodeBadRequest, text)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// netHTTPErrorHeaders are the headers net/http writes, straight to the
// connection, with the answers it gives by itself to requests it cannot
// parse (431 headers too large, 400 malformed, 505 bad version, 501 unknown
// transfer encoding). A handler's answer always carries a Date header
// after them, so only those answers end their headers here.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// libraryError recognises an error answer net/http wrote by itself (it
// offers no hook for them) and returns its status and the user's message.
func libraryError(p []byte) (status int, msg string, ok bool) {
	rest, found := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !found || len(rest) < 4 || rest[3] != ' ' {
		return 0, "", false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil || status < 400 {
		return 0, "", false
	}
	statusLine, body, found := bytes.Cut(rest, []byte(netHTTPErrorHeaders))
	if !found || bytes.ContainsAny(statusLine, "\r\n") || bytes.ContainsAny(body, "\r\n") {
		return 0, "", false
	}
	detail := string(bytes.TrimPrefix(body, rest[:4])) // "431 Request Header..." -> "Request Header..."
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		msg = fmt.Sprintf("request headers too large: at most %d bytes", apiMaxHeaderBytes)
	case http.StatusHTTPVersionNotSupported:
		msg = "HTTP version not supported: send HTTP/1.1 requests (" + detail + ")"
	case http.StatusNotImplemented:
		msg = "unsupported transfer encoding: send the body with a Content-Length or chunked"
	default:
		msg = "malformed HTTP request (" + detail + ")"
	}
	return status, msg, true
}

// errorAnswer is a complete HTTP/1.1 answer, closing the connection, with
// the API's JSON error body.
func errorAnswer(status int, code, msg string) []byte {
	body, _ := json.Marshal(api.Error{Message: msg, Code: code})
	body = append(body, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), len(body))
	b.Write(body)
	return b.Bytes()
}

// refuse answers a connection the server will not read from and closes it.
func refuse(c net.Conn, status int, code, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(errorAnswer(status, code, msg))
	_ = c.Close()
}

// connContext stores the connection in each request's context, for guard.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// proveConn marks the connection of an authenticated request.
func proveConn(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(*apiConn); ok {
		c.owner.prove(c)
	}
}
