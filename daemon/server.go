package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/p2pd/p2pd/api"
)

// handlerFunc is an API handler: it writes a success answer itself, or
// returns an error that serveError turns into the one JSON error shape.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one row of the API's route table.
type route struct {
	method  string
	path    string
	handler handlerFunc
}

func (d *Daemon) routes() []route {
	return []route{
		{http.MethodGet, api.RouteID, d.handleID},
		{http.MethodGet, api.RoutePeers, d.handlePeers},
		{http.MethodGet, api.RouteStatus, d.handleStatus},
		{http.MethodPost, api.RouteConnect, d.handleConnect},
		{http.MethodPost, api.RouteFind, d.handleFind},
		{http.MethodPost, api.RouteListen, d.handleListen},
		{http.MethodPost, api.RouteForward, d.handleForward},
		{http.MethodGet, api.RouteListeners, d.handleListeners},
		{http.MethodPost, api.RouteClose, d.handleClose},
		{http.MethodPost, api.RouteRetry, d.handleRetry},
		{http.MethodGet, api.RouteStreams, d.handleStreams},
		{http.MethodPost, api.RouteStreamsClose, d.handleStreamsClose},
		{http.MethodGet, api.RouteEvents, d.handleEvents},
		{http.MethodGet, api.RouteMetrics, d.handleMetrics},
	}
}

// httpError carries a status and API code with an error.
type httpError struct {
	status int
	code   string
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, api.CodeBadRequest, fmt.Errorf(format, args...)}
}

func withStatus(status int, code string, err error) error {
	return &httpError{status, code, err}
}

// serveError writes err as {"error": ..., "code": ...}.
func serveError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, api.CodeInternal
	var he *httpError
	if errors.As(err, &he) {
		status, code = he.status, he.code
	}
	if status >= 500 {
		log.Warnw("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		log.Debugw("api request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, api.Error{Message: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		log.Debugw("writing api answer", "err", err)
	}
}

// decodeBody decodes a JSON request body into v. It is strict: the body
// must be one JSON object (or null) of valid UTF-8 with nothing after it
// but white space, and every field must be known. A client gets
// apiBodyTimeout to send the body.
func decodeBody(r *http.Request, v any) error {
	rc := http.NewResponseController(nil)
	if w, ok := r.Context().Value(responseKey{}).(http.ResponseWriter); ok {
		rc = http.NewResponseController(w)
	}
	_ = rc.SetReadDeadline(time.Now().Add(apiBodyTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, apiMaxBodyBytes))
	// Clear the deadline at once: once the body is read net/http watches
	// the connection for the client leaving, and a deadline firing there
	// would end a foreground request.
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest("invalid request body: larger than %d bytes", apiMaxBodyBytes)
		}
		return badRequest("invalid request body: reading it: %v", err)
	}
	return decodeJSON(b, v)
}

// decodeJSON is decodeBody's parser: api.Decode, refusals as 400.
func decodeJSON(b []byte, v any) error {
	if err := api.Decode(b, v); err != nil {
		return badRequest("invalid request body: %v", err)
	}
	return nil
}

// responseKey is the context key under which serveAPI stores the request's
// ResponseWriter, so decodeBody can set read deadlines.
type responseKey struct{}

// serveAPI starts the HTTP server on the bound API listener.
func (d *Daemon) serveAPI() {
	mux := http.NewServeMux()
	for _, rt := range d.routes() {
		h := rt.handler
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.ContentLength != 0 {
				w.Header().Set("Connection", "close")
				serveError(w, r, badRequest("%s %s takes no request body", r.Method, r.URL.Path))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), responseKey{}, w))
			if err := h(w, r); err != nil {
				serveError(w, r, err)
			}
		})
	}
	// Profiling, behind the same token as everything else.
	// pprof.Index serves named profiles (heap, goroutine...) only under
	// /debug/pprof/, so strip the API prefix for it.
	mux.Handle("GET "+api.RouteDebugPprof+"/", http.StripPrefix(api.Prefix, http.HandlerFunc(pprof.Index)))
	mux.HandleFunc("GET "+api.RouteDebugPprof+"/profile", pprof.Profile)
	mux.HandleFunc("GET "+api.RouteDebugPprof+"/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		serveError(w, r, withStatus(http.StatusNotFound, api.CodeNotFound,
			fmt.Errorf("no such API route: %s %s", r.Method, r.URL.Path)))
	})
	// No ReadTimeout or WriteTimeout: they would end event streams and
	// foreground requests; decodeBody bounds the body instead, and apiConns
	// keeps unauthenticated connections from holding the API.
	d.server = &http.Server{
		Handler:           d.guard(mux),
		ReadHeaderTimeout: apiHeaderTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return d.ctx },
		ConnContext:       connContext,
		ErrorLog:          nil,
	}
	max := d.cfg.maxAPIConns
	if max <= 0 {
		max = maxAPIConns
	}
	d.apiConns = newAPIConns(d.apiLn, max)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.server.Serve(d.apiConns); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorw("api server stopped", "err", err)
		}
	}()
}

// guard refuses requests from browsers and requests without the token.
// A web page can make a browser send requests to 127.0.0.1; such requests
// carry an Origin header, or (DNS rebinding) a Host that is not ours.
func (d *Daemon) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A refused client's connection is closed after the answer: its
		// body is never read.
		w.Header().Set("Connection", "close")
		if r.Header.Get("Origin") != "" {
			serveError(w, r, withStatus(http.StatusForbidden, api.CodeForbidden,
				errors.New("requests from web pages are refused (Origin header present)")))
			return
		}
		if !d.hostAllowed(r.Host) {
			serveError(w, r, withStatus(http.StatusForbidden, api.CodeForbidden,
				fmt.Errorf("requests for host %q are refused: the API answers only to its own address", r.Host)))
			return
		}
		want, err := d.token.current()
		if err != nil {
			serveError(w, r, withStatus(http.StatusUnauthorized, api.CodeUnauthorized, err))
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="p2pd"`)
			msg := "missing API token: send \"Authorization: Bearer <token>\" with the token from REPO/api.token"
			if ok {
				msg = "wrong API token: use the token from REPO/api.token"
			}
			serveError(w, r, withStatus(http.StatusUnauthorized, api.CodeUnauthorized, errors.New(msg)))
			return
		}
		w.Header().Del("Connection")
		proveConn(r)
		next.ServeHTTP(w, r)
	})
}

// hostAllowed accepts Host headers naming a loopback address or localhost
// (any port: the daemon may sit behind a port mapping), or the socket for
// unix listeners.
func (d *Daemon) hostAllowed(h string) bool {
	if h == "" {
		return false
	}
	host := h
	if hh, _, err := net.SplitHostPort(h); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	// An API bound to a non-loopback address answers to that address.
	if tcp, ok := d.apiLn.Addr().(*net.TCPAddr); ok && tcp.IP.Equal(ip) {
		return true
	}
	return false
}

func (d *Daemon) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
