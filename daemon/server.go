package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
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

// decodeBody decodes a JSON request body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid request body: %v", err)
	}
	return nil
}

// serveAPI starts the HTTP server on the bound API listener.
func (d *Daemon) serveAPI() {
	mux := http.NewServeMux()
	for _, rt := range d.routes() {
		h := rt.handler
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
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
	d.server = &http.Server{
		Handler:           d.guard(mux),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return d.ctx },
		ErrorLog:          nil,
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.server.Serve(d.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorw("api server stopped", "err", err)
		}
	}()
}

// guard refuses requests from browsers and requests without the token.
// A web page can make a browser send requests to 127.0.0.1; such requests
// carry an Origin header, or (DNS rebinding) a Host that is not ours.
func (d *Daemon) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(d.token.current())) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="p2pd"`)
			msg := "missing API token: send \"Authorization: Bearer <token>\" with the token from REPO/api.token"
			if ok {
				msg = "wrong API token: use the token from REPO/api.token"
			}
			serveError(w, r, withStatus(http.StatusUnauthorized, api.CodeUnauthorized, errors.New(msg)))
			return
		}
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
